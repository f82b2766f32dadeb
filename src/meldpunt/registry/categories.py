"""Categories: one controlled vocabulary for the classification schemes of the field.

Hash lists arrive classified in many schemes: INTERPOL's baseline/national split (ICCAM, ICSE),
the UK's A/B/C, the industry's A1/A2/B1/B2, Project VIC's 0-4, ThreatExchange's opinion classes,
NCII lists. Every item keeps the value exactly as it came (``raw``) and the scheme it came in
(``scheme``, with a profile where the scheme has several: ``vic:us``), and gets one normalised
``code`` from the table below, so that a query can say "baseline only" without knowing where a
list came from::

    >>> classify("A1", "industry")
    Category(code='csam_baseline', raw='A1', scheme='industry')
    >>> category_filter("baseline")
    frozenset({'csam_baseline'})

A raw value that a scheme does not know is kept, with the code ``unknown``; it is never refused.
The mapping table is documented in docs/registry.md; keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from meldpunt.registry.errors import InvalidInput

__all__ = [
    "CODES",
    "DEFAULT_VIC_PROFILE",
    "FILTERS",
    "NEVER_MATCHED",
    "SCHEMES",
    "SUBSCRIBED_BY_DEFAULT",
    "Category",
    "CategoryCode",
    "category_filter",
    "classify",
    "default_category",
    "is_code",
    "parse_scheme",
]


@dataclass(frozen=True)
class CategoryCode:
    """One normalised category."""

    code: str
    label: str
    #: Treated as illegal material wherever it is found (filters such as "illegal" use this).
    illegal: bool
    #: Meets INTERPOL's baseline: illegal in (virtually) every jurisdiction.
    baseline: bool = False


CODES: dict[str, CategoryCode] = {
    c.code: c
    for c in (
        CategoryCode("csam_baseline", "child sexual abuse material, INTERPOL baseline", True, True),
        CategoryCode("csam_national", "child sexual abuse material under national law", True),
        CategoryCode("csam", "child sexual abuse material, baseline not assessed", True),
        CategoryCode(
            "child_exploitive", "child exploitive, not abuse material (age difficult)", False
        ),
        CategoryCode("cgi_animation", "computer-generated or animated child exploitive", False),
        CategoryCode("comparison", "comparison or exemplar picture (investigators' use)", False),
        CategoryCode("ncii", "non-consensual intimate image", True),
        CategoryCode("non_pertinent", "assessed: not pertinent", False),
        CategoryCode("uncategorised", "no assessment yet", False),
        CategoryCode("unknown", "a raw value the vocabulary does not know", False),
    )
}

#: Named filters over codes: ``category_filter("baseline")``. Any single code is a filter too.
FILTERS: dict[str, frozenset[str]] = {
    "baseline": frozenset(c.code for c in CODES.values() if c.baseline),
    "illegal": frozenset(c.code for c in CODES.values() if c.illegal),
    "csam": frozenset({"csam_baseline", "csam_national", "csam"}),
    "ncii": frozenset({"ncii"}),
}

#: Entries assessed as not pertinent never make a blocklist match, whatever a filter says: a
#: list may carry them (VICS category 5, ThreatExchange's negative class) so that people know
#: them, but a platform must never act on them.
NEVER_MATCHED: frozenset[str] = frozenset({"non_pertinent"})

#: What a subscription covers unless an admin names other categories: illegal material only,
#: not the unassessed (``uncategorised``), the unrecognised (``unknown``) or the non-pertinent.
SUBSCRIBED_BY_DEFAULT: frozenset[str] = FILTERS["illegal"]

DEFAULT_VIC_PROFILE = "vics"

#: Schemes and their profiles (None: the scheme has a single meaning per value).
SCHEMES: dict[str, tuple[str, ...] | None] = {
    "meldpunt": None,
    "interpol": None,
    "icse": None,
    "uk": None,
    "industry": None,
    "vic": ("vics", "us"),
    "threatexchange": None,
    "ncii": None,
}

_SCHEME_ALIASES = {"iccam": "interpol", "projectvic": "vic", "vics": "vic", "te": "threatexchange"}

# A value that carries no content category by itself: the set's default applies.
_DEFER = "<default>"

_INTERPOL = {
    "baseline": "csam_baseline",
    "national": "csam_national",
    "notillegal": "non_pertinent",
    "legal": "non_pertinent",
}
_TRUE = {"y", "yes", "t", "true", "1"}
_FALSE = {"n", "no", "f", "false", "0"}
_UK = {"a": "csam", "b": "csam", "c": "csam"}
_INDUSTRY = {
    # A: prepubescent minor, B: pubescent minor; 1: sex act, 2: lascivious exhibition.
    "a1": "csam_baseline",
    "a2": "csam_baseline",
    "b1": "csam_national",
    "b2": "csam_national",
}
_VIC_COMMON = {"1": "csam", "2": "child_exploitive", "3": "cgi_animation", "4": "comparison"}
_VIC = {
    # VICS exports: 0 is "no category assigned" (the older DHS numbering adds 5: non-pertinent).
    "vics": {"0": "uncategorised", **_VIC_COMMON, "5": "non_pertinent"},
    # Project VIC US profile (Griffeye, Autopsy): 0 is "non-pertinent".
    "us": {"0": "non_pertinent", **_VIC_COMMON},
}
_THREATEXCHANGE = {
    "positiveclass": _DEFER,
    "negativeclass": "non_pertinent",
    "investigationseed": "uncategorised",
    "disputed": "uncategorised",
}
_NCII = {"ncii": "ncii", "intimate": "ncii", "nonconsensualintimateimage": "ncii", "true": "ncii"}


@dataclass(frozen=True)
class Category:
    """A normalised code with the raw value and scheme it came from (both None when the code
    came from the set's default)."""

    code: str
    raw: str | None = None
    scheme: str | None = None

    @property
    def illegal(self) -> bool:
        return CODES[self.code].illegal

    @property
    def baseline(self) -> bool:
        return CODES[self.code].baseline


def is_code(value: str) -> bool:
    return value in CODES


def default_category(default_code: str | None) -> Category:
    """The category an item gets when its record says nothing: the set's default, if any."""
    return Category(default_code or "uncategorised")


def parse_scheme(scheme: str) -> tuple[str, str | None]:
    """``"vic:us"`` -> ``("vic", "us")``; raises InvalidInput for a scheme that does not exist."""
    name, _, profile = scheme.strip().lower().partition(":")
    name = _SCHEME_ALIASES.get(name, name)
    if name not in SCHEMES:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidInput(f"unknown category scheme {scheme!r} (known: {known})")
    profiles = SCHEMES[name]
    if profile and (profiles is None or profile not in profiles):
        raise InvalidInput(f"scheme {name!r} has no profile {profile!r}")
    if profiles is not None and not profile:
        profile = DEFAULT_VIC_PROFILE if name == "vic" else profiles[0]
    return name, profile or None


def _key(raw: str) -> str:
    """Case, spaces and punctuation do not matter: "Category A", "cat-a" and "A" are one key."""
    key = re.sub(r"[^0-9a-z]", "", raw.lower())
    for prefix in ("category", "cat"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
            break
    return key


def _lookup(name: str, profile: str | None, key: str) -> str | None:
    if name == "meldpunt":
        code = key if key in CODES else _snake(key)
        return code if code in CODES else None
    if name == "interpol":
        return _INTERPOL.get(key.removesuffix("csam").removeprefix("csam"))
    if name == "icse":
        return "csam_baseline" if key in _TRUE else "csam_national" if key in _FALSE else None
    if name == "uk":
        return _UK.get(key)
    if name == "industry":
        return _INDUSTRY.get(key)
    if name == "vic":
        return _VIC[profile or DEFAULT_VIC_PROFILE].get(key)
    if name == "threatexchange":
        return _THREATEXCHANGE.get(key)
    if name == "ncii":
        return _NCII.get(key)
    return None


_SNAKE = {re.sub(r"[^0-9a-z]", "", code): code for code in CODES}


def _snake(key: str) -> str:
    return _SNAKE.get(key, key)


# The order in which a value of unnamed scheme is recognised: most specific first.
_GUESS_ORDER = ("meldpunt", "interpol", "industry", "uk", "vic", "threatexchange", "ncii")


def classify(
    raw: str | int | None,
    scheme: str | None = None,
    *,
    default: str | None = None,
) -> Category:
    """Normalise ``raw`` from ``scheme`` (``"vic:us"``; None: recognise the scheme by the value).

    ``default`` is the set's default code, used when ``raw`` is empty or says nothing about the
    content (a ThreatExchange ``POSITIVE_CLASS``). A value the scheme does not know gives the
    code ``unknown`` and keeps the raw value.
    """
    text = "" if raw is None else str(raw).strip()
    if not text:
        return default_category(default)
    key = _key(text)
    if scheme is not None:
        name, profile = parse_scheme(scheme)
        shown = f"{name}:{profile}" if profile else name
        code = _lookup(name, profile, key)
        return _category(code, text, shown, default)
    for name in _GUESS_ORDER:
        _, profile = parse_scheme(name)
        code = _lookup(name, profile, key)
        if code is not None:
            return _category(code, text, f"{name}:{profile}" if profile else name, default)
    return Category("unknown", text, None)


def _category(code: str | None, raw: str, scheme: str, default: str | None) -> Category:
    if code is None:
        return Category("unknown", raw, scheme)
    if code == _DEFER:
        return Category(default or "uncategorised", raw, scheme)
    return Category(code, raw, scheme)


def category_filter(names: str | Iterable[str]) -> frozenset[str]:
    """The codes a filter admits: named filters (``baseline``, ``illegal``, ``csam``, ``ncii``)
    and single codes, comma-separated or as a list. Raises InvalidInput for an unknown name."""
    parts = names.split(",") if isinstance(names, str) else list(names)
    codes: set[str] = set()
    for part in (p.strip().lower() for p in parts):
        if not part:
            continue
        if part in FILTERS:
            codes |= FILTERS[part]
        elif part in CODES:
            codes.add(part)
        else:
            known = ", ".join([*sorted(FILTERS), *sorted(CODES)])
            raise InvalidInput(f"unknown category filter {part!r} (known: {known})")
    return frozenset(codes)

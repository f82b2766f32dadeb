"""Project VIC's VICS JSON, versions 1.3 and 2.0, read as a stream.

    {"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media",
     "value": [{"MediaID": 1, "Category": 1, "MD5": "…", "SHA1": "…", "PhotoDNA": "…"}, …]}

2.0 names its model in ``@odata.context`` instead. ``value`` holds media records, or cases whose
``Media`` list holds them. Hash keys are matched in any casing (``MD5``, ``Md5``, ``SHA256``);
PhotoDNA (a ``PhotoDNA`` field, or an ``AlternativeHashes`` entry) is kept as the opaque signal
type ``photodna``; PDQ is read from a ``PDQ`` field or an ``AlternativeHashes`` entry. Flags come
as JSON booleans or as strings ("true"). The file is parsed event by event (ijson), so memory
stays flat however large the export: only one media record is held at a time.

Writing gives VICS 2.0. The Category is written in the chosen profile; meldpunt's own code is
written to ``Tags`` as ``meldpunt:<code>`` so that a VICS round trip keeps, say, baseline apart
from other abuse material (VICS has a single category for both).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TextIO

import ijson

from meldpunt.registry.categories import CODES
from meldpunt.registry.records import (
    ExportItem,
    ImportRecord,
    ReadOptions,
    RecordProblem,
    parse_bool,
    skip_bom,
)

__all__ = ["CONTEXT_13", "CONTEXT_20", "NAME", "read", "sniff", "write"]

NAME = "vics"
CONTEXT_13 = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media"
CONTEXT_20 = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"

_HASH_KEYS = {
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "photodna": "photodna",
    "pdq": "pdq",
}
_FLAGS = ("IsDistributed", "VictimIdentified", "OffenderIdentified", "IsPrecategorized",
          "IsSuspected", "SelfGenerated")  # fmt: skip
_TAG_CODE = re.compile(r"meldpunt:([a-z_]+)")


def sniff(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"{"):
        return False
    return any(key in head for key in (b'"odata.metadata"', b'"@odata.context"', b'"value"'))


@functools.lru_cache(maxsize=1024)
def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _build(first_event: str, first_value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    """The value that starts with (first_event, first_value), consuming events up to its end."""
    builder = ijson.ObjectBuilder()
    builder.event(first_event, first_value)
    if first_event not in ("start_map", "start_array"):
        return builder.value
    depth = 1
    for _, event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                break
    return builder.value


def read(stream: BinaryIO, options: ReadOptions) -> Iterator[ImportRecord | RecordProblem]:
    """Media records, numbered 1, 2, … in file order (nested media included)."""
    scheme = f"vic:{options.vic_profile}"
    events = iter(ijson.parse(skip_bom(stream), use_float=True))
    number = 0
    try:
        for prefix, event, _ in events:
            if prefix != "value.item" or event != "start_map":
                continue
            # One entry of "value": a media record, or a case with its media in "Media".
            entry: dict[str, Any] = {}
            nested = False
            for inner_prefix, inner_event, inner_value in events:
                if inner_prefix == "value.item" and inner_event == "end_map":
                    break
                if inner_event != "map_key":
                    continue
                key = inner_value
                _, first_event, first_value = next(events)
                if _key(key) == "media" and first_event == "start_array":
                    nested = True
                    for _, media_event, media_value in events:
                        if media_event == "end_array":
                            break
                        number += 1
                        media = _build(media_event, media_value, events)
                        yield _record(media, number, scheme)
                else:
                    entry[key] = _build(first_event, first_value, events)
            if not nested:
                number += 1
                yield _record(entry, number, scheme)
    except ijson.JSONError as exc:
        detail = (str(exc).strip().splitlines() or ["unreadable"])[0]
        reason = f"broken JSON after media record {number}: {detail}"
        yield RecordProblem(number + 1, reason, fatal=True)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _record(media: Any, number: int, scheme: str) -> ImportRecord | RecordProblem:
    if not isinstance(media, dict):
        return RecordProblem(number, "a media record must be a JSON object")
    fields = {_key(name): value for name, value in media.items()}
    signals: list[tuple[str, str]] = []
    for key, kind in _HASH_KEYS.items():
        value = fields.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            return RecordProblem(number, f"{key.upper()} must be a string, not {value!r}")
        signals.append((kind, value))
    alternatives = fields.get("alternativehashes")
    for entry in alternatives if isinstance(alternatives, list) else []:
        if not isinstance(entry, dict):
            continue
        named = {_key(name): value for name, value in entry.items()}
        alternative = _HASH_KEYS.get(_key(str(named.get("hashname") or "")))
        hash_value = named.get("hashvalue")
        if alternative and isinstance(hash_value, str) and hash_value.strip():
            signals.append((alternative, hash_value))
    if not signals:
        return RecordProblem(number, "no hash (MD5, SHA1, SHA256, PhotoDNA or PDQ)")
    category = fields.get("category")
    if isinstance(category, dict | list | bool):
        return RecordProblem(number, f"Category must be a number, not {category!r}")
    tags = fields.get("tags")
    tag_code = _TAG_CODE.search(tags) if isinstance(tags, str) else None
    attributes: dict[str, Any] = {}
    for flag in _FLAGS:
        if _key(flag) in fields:
            attributes[flag] = parse_bool(fields[_key(flag)])
    for name in ("Series", "Tags", "MediaSize", "DateUpdated"):
        if fields.get(_key(name)) is not None:
            attributes[name] = fields[_key(name)]
    return ImportRecord(
        number=number,
        signals=signals,
        category_raw=_text(category),
        category_scheme=scheme,
        category_code=tag_code.group(1) if tag_code and tag_code.group(1) in CODES else None,
        reference=_text(fields.get("mediaid")),
        note=_text(fields.get("comments")),
        attributes=attributes,
    )


_TO_VIC = {
    "csam_baseline": 1,
    "csam_national": 1,
    "csam": 1,
    "child_exploitive": 2,
    "cgi_animation": 3,
    "comparison": 4,
    "uncategorised": 0,
}


def vic_category(item: ExportItem, profile: str) -> int | None:
    """The item's category as a VIC number in ``profile``: its own raw value when it came from
    that profile, else the nearest VIC category; None where VIC has none (NCII, unknown)."""
    if item.category_scheme == f"vic:{profile}" and (item.category_raw or "").isdigit():
        return int(item.category_raw or 0)
    if item.category == "non_pertinent":
        return 0 if profile == "us" else None
    if item.category == "uncategorised" and profile == "us":
        return None
    return _TO_VIC.get(item.category)


def _media(item: ExportItem, profile: str) -> dict[str, Any]:
    media: dict[str, Any] = {}
    if item.reference and item.reference.isdigit():
        media["MediaID"] = int(item.reference)
    else:
        media["MediaID"] = item.id
    media["Category"] = vic_category(item, profile)
    alternatives = []
    for kind, value in item.signals:
        if kind in ("md5", "sha1", "sha256"):
            media.setdefault(kind.upper(), value.upper())
        elif kind == "photodna":
            alternatives.append({"HashName": "PhotoDNA", "HashValue": value})
        elif kind == "pdq":
            alternatives.append({"HashName": "PDQ", "HashValue": value})
    if alternatives:
        media["AlternativeHashes"] = alternatives
    media["IsPrecategorized"] = item.category not in ("uncategorised", "unknown")
    media["Tags"] = f"meldpunt:{item.category}"
    if item.note:
        media["Comments"] = item.note
    return media


def write(items: Iterable[ExportItem], out: TextIO, *, vic_profile: str = "vics") -> int:
    """Write VICS 2.0 (media records at the top level); returns the number of records."""
    out.write('{"@odata.context": ' + json.dumps(CONTEXT_20) + ', "value": [')
    count = 0
    for item in items:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(_media(item, vic_profile), ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count

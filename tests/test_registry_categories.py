"""The category vocabulary: every scheme of the field maps to one code, raw values are kept."""

from __future__ import annotations

import pytest

from meldpunt.registry import CODES, FILTERS, Category, InvalidInput, category_filter, classify
from meldpunt.registry.categories import SCHEMES, parse_scheme

# The mapping table of docs/registry.md, row by row: (raw, scheme, code).
TABLE = [
    ("baseline", "interpol", "csam_baseline"),
    ("Baseline", "iccam", "csam_baseline"),
    ("national", "interpol", "csam_national"),
    ("not illegal", "interpol", "non_pertinent"),
    ("Y", "icse", "csam_baseline"),
    ("true", "icse", "csam_baseline"),
    ("N", "icse", "csam_national"),
    ("A", "uk", "csam"),
    ("Category B", "uk", "csam"),
    ("cat-c", "uk", "csam"),
    ("A1", "industry", "csam_baseline"),
    ("A2", "industry", "csam_baseline"),
    ("B1", "industry", "csam_national"),
    ("b2", "industry", "csam_national"),
    ("0", "vic", "uncategorised"),
    ("0", "vic:vics", "uncategorised"),
    ("0", "vic:us", "non_pertinent"),
    ("1", "vic", "csam"),
    ("2", "vic:us", "child_exploitive"),
    ("3", "vic", "cgi_animation"),
    ("4", "vic", "comparison"),
    ("5", "vic:vics", "non_pertinent"),
    ("NEGATIVE_CLASS", "threatexchange", "non_pertinent"),
    ("INVESTIGATION_SEED", "te", "uncategorised"),
    ("ncii", "ncii", "ncii"),
    ("csam_baseline", "meldpunt", "csam_baseline"),
]


@pytest.mark.parametrize(("raw", "scheme", "code"), TABLE)
def test_mapping_table(raw, scheme, code):
    category = classify(raw, scheme)
    assert category.code == code
    assert category.raw == raw  # the raw value is always kept as given
    assert category.scheme is not None and category.scheme.split(":")[0] in SCHEMES


def test_profile_is_kept_beside_the_scheme():
    assert classify("0", "vic").scheme == "vic:vics"
    assert classify("0", "vic:us").scheme == "vic:us"
    assert classify(0, "projectvic:us") == Category("non_pertinent", "0", "vic:us")


def test_vic_zero_is_never_illegal_in_any_profile():
    for profile in SCHEMES["vic"] or ():
        category = classify("0", f"vic:{profile}")
        assert not category.illegal and not category.baseline
        assert category.code not in category_filter("illegal")


def test_scheme_recognised_from_the_value_when_not_named():
    assert classify("A1") == Category("csam_baseline", "A1", "industry")
    assert classify("B") == Category("csam", "B", "uk")
    assert classify("national") == Category("csam_national", "national", "interpol")
    assert classify("3") == Category("cgi_animation", "3", "vic:vics")
    assert classify("ncii") == Category("ncii", "ncii", "meldpunt")


def test_unknown_values_are_kept_not_refused():
    assert classify("7", "vic") == Category("unknown", "7", "vic:vics")
    assert classify("Z9", "industry") == Category("unknown", "Z9", "industry")
    assert classify("something else") == Category("unknown", "something else", None)


def test_empty_and_deferring_values_take_the_sets_default():
    assert classify(None, default="csam_baseline") == Category("csam_baseline")
    assert classify("  ", "vic") == Category("uncategorised")
    # POSITIVE_CLASS says "this is what the list is about", not what it is: the default applies
    assert classify("POSITIVE_CLASS", default="ncii") == Category(
        "ncii", "POSITIVE_CLASS", "threatexchange"
    )


def test_filters_are_sets_of_codes():
    assert category_filter("baseline") == {"csam_baseline"}
    assert category_filter("csam") == {"csam_baseline", "csam_national", "csam"}
    assert category_filter("baseline, ncii") == {"csam_baseline", "ncii"}
    assert category_filter(["csam_national"]) == {"csam_national"}
    assert category_filter("illegal") == {c for c, info in CODES.items() if info.illegal}
    assert "non_pertinent" not in category_filter("illegal")
    assert "uncategorised" not in category_filter("illegal")
    assert set(FILTERS) == {"baseline", "illegal", "csam", "ncii"}
    with pytest.raises(InvalidInput, match="unknown category filter"):
        category_filter("baseline,nonsense")


def test_bad_scheme_names_are_refused():
    with pytest.raises(InvalidInput, match="unknown category scheme"):
        classify("A", "nowhere")
    with pytest.raises(InvalidInput, match="no profile"):
        parse_scheme("vic:nl")
    with pytest.raises(InvalidInput):
        parse_scheme("uk:x")

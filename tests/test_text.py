"""What text meldpunt accepts (``meldpunt.text``), and the domain refusing the rest wherever
text comes in: the command line and the pages call the same functions, and imports report the
line (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os

import pytest

from meldpunt import checks, registry
from meldpunt.text import TextError, check_name, check_text, could_be_name, text_problem


@pytest.mark.parametrize(
    ("given", "kept"),
    [("police-nl", "police-nl"), ("  nl 2026 ", "nl 2026"), ("Meldpunt Kinderporno", None),
     ("a.b", "a.b"), ("ü-ß-日本", "ü-ß-日本"), ("v1.2", "v1.2")],
)  # fmt: skip
def test_names_that_are_fine(given, kept):
    assert check_name(given) == (kept or given.strip())


@pytest.mark.parametrize(
    "name", ["a/b", "../x", "..", "a\\b", "x\x00", "tab\there", "a\nb", "\x1b[31m", "x\u202ey",
             "a\u2028b", "", "   ", "x" * 201, "bad\udcff"],
)  # fmt: skip
def test_names_that_are_refused(name):
    with pytest.raises(TextError):
        check_name(name)
    assert not could_be_name(name)


def test_free_text_keeps_lines_and_tabs_one_line_values_do_not():
    assert check_text("one\n\ttwo\r\n", "a note", max_length=100, multiline=True)
    with pytest.raises(TextError, match="U\\+000A"):
        check_text("one\ntwo", "a ref", max_length=100)
    for bad in ("\x00", "\x07", "\x7f", "\x9b", "\ud800"):
        assert text_problem(f"a{bad}b", multiline=True), repr(bad)
    assert "NUL" in (text_problem("a\x00") or "")
    with pytest.raises(TextError, match="longer than 3"):
        check_text("abcd", "a ref", max_length=3)


def test_the_domain_refuses_unstorable_names_and_text(session, settings):
    with pytest.raises(registry.InvalidInput, match="'/'"):
        registry.create_set(session, "police/nl")
    with pytest.raises(registry.InvalidInput, match="NUL"):
        registry.create_set(session, "police", description="from\x00the hotline")
    with pytest.raises(checks.InvalidInput, match="'..'"):
        checks.create_org(session, "../platform", "platform")
    checks.create_org(session, "platform-a", "platform")
    with pytest.raises(checks.InvalidInput, match="control characters"):
        checks.create_key(session, "platform-a", "platform", label="uploads\x1b")
    police = registry.create_set(session, "police")
    with pytest.raises(registry.InvalidInput, match="note contains a NUL"):
        registry.add_item(session, police, [("md5", os.urandom(16).hex())], note="x\x00")
    session.commit()
    # Looking up a name no set or organisation can have is "not found", on both databases
    # (PostgreSQL could not even compare a NUL).
    with pytest.raises(registry.NotFound):
        registry.get_set(session, "police\x00")
    with pytest.raises(checks.NotFound):
        checks.get_org(session, "platform-a\x00")


def test_an_outcome_reason_with_nul_is_refused(session, settings):
    org = checks.create_org(session, "platform-a", "platform")
    police = registry.create_set(session, "police", default_category="baseline")
    item = registry.add_item(session, police, [("md5", os.urandom(16).hex())]).item.id
    hit = checks.NewHit("md5", os.urandom(16).hex(), 0, police.id, item, "csam_baseline")
    (hit_id,) = checks.record_hits(session, org.id, [hit])
    with pytest.raises(checks.InvalidInput, match="reason contains a NUL"):
        checks.record_outcome(session, org.id, hit_id, "other", reason="why\x00", actor="test")
    with pytest.raises(checks.InvalidInput, match="public_url"):
        checks.check_public_url("https://example.org/\x00")
    bad_ref = checks.NewHit("md5", os.urandom(16).hex(), 0, police.id, item, "csam_baseline",
                            platform_ref="upload\x00")  # fmt: skip
    with pytest.raises(checks.InvalidInput, match="platform_ref"):
        checks.record_hits(session, org.id, [bad_ref])


def test_an_import_reports_lines_with_control_characters_and_keeps_the_rest(
    session, settings, tmp_path
):
    police = registry.create_set(session, "police")
    session.commit()
    lines = [
        {"signals": [{"type": "md5", "value": os.urandom(16).hex()}], "note": "fine\nnote"},
        {"signals": [{"type": "md5", "value": os.urandom(16).hex()}], "note": "bad\u0000"},
        {"signals": [{"type": "md5", "value": os.urandom(16).hex()}], "reference": "r\u001b"},
        {"signals": [{"type": "md5", "value": os.urandom(16).hex()}], "category_raw": "A\u0000"},
        {"signals": [{"type": "md5", "value": os.urandom(16).hex()}], "reference": "fine"},
    ]
    path = tmp_path / "entries.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = registry.import_file(session, police, path, format="jsonl")
    assert summary.added == 2
    assert [(p.number, p.reason.split(" contains")[0]) for p in summary.problems] == [
        (2, "its note"),
        (3, "its reference"),
        (4, "its category"),
    ]

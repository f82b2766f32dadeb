"""Import and export in each exchange format: realistic samples, malformed records reported with
their line or record numbers, idempotent re-imports, round trips."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

import registry_samples as samples
from meldpunt import audit, registry
from meldpunt.registry.formats import FORMATS, detect
from meldpunt.registry.formats.vics import vic_category
from meldpunt.registry.records import ExportItem, ImportRecord, ReadOptions, RecordProblem
from meldpunt.store.models import AuditEvent

SAMPLES = {
    "vics-1.3": ("vics", samples.vics_13_flat),
    "vics-2.0": ("vics", samples.vics_20_cases),
    "icse": ("icse", samples.icse),
    "te-csv": ("te-csv", samples.te_csv),
    "te-csv-headerless": ("te-csv", lambda: samples.te_csv(header=False)),
    "plain": ("plain", samples.plain),
    "jsonl": ("jsonl", samples.jsonl),
}


def read_all(name: str, data: bytes, **options) -> list[ImportRecord | RecordProblem]:
    return list(FORMATS[name].read(io.BytesIO(data), ReadOptions(**options)))


@pytest.mark.parametrize("sample_name", SAMPLES)
def test_detected_by_content(sample_name):
    name, make = SAMPLES[sample_name]
    data = make().data
    assert detect(data[:65536]) == name
    assert detect(b"\xef\xbb\xbf" + data) == name  # a byte order mark changes nothing


def test_not_detected_when_nothing_fits():
    assert detect(b"\x89PNG\r\n\x1a\n\x00\x00") is None
    assert detect(b"hello\n") is None


@pytest.mark.parametrize("sample_name", SAMPLES)
def test_import_reports_bad_records_by_number_and_imports_the_rest(session, sample_name):
    name, make = SAMPLES[sample_name]
    sample = make()
    police = registry.create_set(session, "police")
    session.commit()
    summary = registry.import_stream(session, police, io.BytesIO(sample.data))
    assert summary.format == name and summary.complete
    assert (summary.added, summary.updated, summary.unchanged) == (len(sample.good), 0, 0)
    assert summary.rejected == len(sample.bad)
    assert summary.records == len(sample.good) + len(sample.bad)
    problems = {p.number: p.reason for p in summary.problems}
    assert set(problems) == set(sample.bad)
    for number, fragment in sample.bad.items():
        assert fragment in problems[number], (number, problems[number])
    for number, signals in sample.good.items():
        (item,) = registry.find_items(session, *signals[0])
        assert item.signals == tuple(signals), number
        if number in sample.categories:
            assert item.category == sample.categories[number], number

    again = registry.import_stream(session, police, io.BytesIO(sample.data))
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(sample.good))
    assert again.rejected == len(sample.bad)
    assert again.first_seq is None  # nothing changed, nothing numbered


def test_vics_13_fields_flags_and_photodna():
    sample = samples.vics_13_flat()
    first, second, *_ = read_all("vics", sample.data)
    assert isinstance(first, ImportRecord) and isinstance(second, ImportRecord)
    assert (first.reference, first.category_raw, first.category_scheme) == ("101", "1", "vic:vics")
    # flags arrive as strings in 1.3 exports and are read as booleans
    assert first.attributes["IsDistributed"] is True
    assert first.attributes["VictimIdentified"] is False
    assert first.attributes["IsPrecategorized"] is True
    assert second.attributes["IsDistributed"] is False
    assert ("photodna", sample.good[1][2][1]) in first.signals


def test_vics_20_nested_media_and_json_booleans():
    records = read_all("vics", samples.vics_20_cases().data)
    assert [r.number for r in records] == [1, 2, 3, 4]
    first = records[0]
    assert isinstance(first, ImportRecord)
    assert first.attributes == {"IsDistributed": True, "OffenderIdentified": False}
    assert [kind for kind, _ in first.signals] == ["md5", "sha256", "photodna", "pdq"]


def test_vics_profile_decides_what_category_zero_means(session):
    sample = samples.vics_13_flat()
    record = read_all("vics", sample.data, vic_profile="us")[1]
    assert isinstance(record, ImportRecord) and record.category_scheme == "vic:us"
    police = registry.create_set(session, "police")
    session.commit()
    registry.import_stream(session, police, io.BytesIO(sample.data), vic_profile="us")
    (item,) = registry.find_items(session, *sample.good[2][0])
    assert (item.category, item.category_raw, item.category_scheme) == (
        "non_pertinent",
        "0",
        "vic:us",
    )


def test_unknown_categories_are_kept_and_reported(session):
    sample = samples.vics_13_flat()
    police = registry.create_set(session, "police")
    session.commit()
    summary = registry.import_stream(session, police, io.BytesIO(sample.data))
    assert summary.unknown_categories == {("vic:vics", "9"): 1}
    (item,) = registry.find_items(session, *sample.good[6][0])
    assert (item.category, item.category_raw, item.category_scheme) == ("unknown", "9", "vic:vics")


def test_broken_json_midway_keeps_what_came_before(session):
    data = samples.vics_13_flat().data
    cut = data[: data.index(b'"MediaID": 103')]
    police = registry.create_set(session, "police")
    session.commit()
    summary = registry.import_stream(session, police, io.BytesIO(cut))
    assert summary.added == 2 and not summary.complete
    assert summary.aborted is not None and "after media record 2" in summary.aborted


def test_a_file_that_is_not_its_format_at_all_is_an_error(session):
    police = registry.create_set(session, "police")
    session.commit()
    with pytest.raises(registry.FormatError, match="format"):
        registry.import_stream(session, police, io.BytesIO(b"\x00\x01\x02binary"))
    with pytest.raises(registry.FormatError, match="cannot read the file as vics"):
        registry.import_stream(session, police, io.BytesIO(b"{not json"), format="vics")
    with pytest.raises(registry.FormatError, match="header row"):
        registry.import_stream(session, police, io.BytesIO(b"a;b\n1;2\n"), format="icse")
    with pytest.raises(registry.FormatError, match="unknown format"):
        registry.import_stream(session, police, io.BytesIO(b"md5 x"), format="xml")


def test_format_override_beats_detection(session):
    # A plain list whose lines also look like nothing else: read as te-csv on request, every
    # line is then a malformed row.
    sample = samples.plain()
    police = registry.create_set(session, "police")
    session.commit()
    summary = registry.import_stream(session, police, io.BytesIO(sample.data), format="te-csv")
    assert summary.format == "te-csv" and summary.added == 0 and summary.rejected > 0


def test_set_default_category_and_explicit_ones(session):
    police = registry.create_set(session, "police", default_category="A1")
    session.commit()
    sample = samples.plain()
    registry.import_stream(session, police, io.BytesIO(sample.data))
    (item,) = registry.find_items(session, *sample.good[3][0])
    assert (item.category, item.category_raw) == ("csam_baseline", None)
    te = samples.te_csv()
    registry.import_stream(session, police, io.BytesIO(te.data))
    (positive,) = registry.find_items(session, *te.good[2][0])
    assert (positive.category, positive.category_raw, positive.category_scheme) == (
        "csam_baseline",
        "POSITIVE_CLASS",
        "threatexchange",
    )


def test_imports_commit_in_batches_with_one_audit_event_each(session):
    sample = samples.icse()
    police = registry.create_set(session, "police")
    session.commit()
    progress = []
    summary = registry.import_stream(
        session, police, io.BytesIO(sample.data), batch_size=2, progress=progress.append
    )
    assert summary.added == 3
    # after each batch of 2 good records, and at the end (rejected records are not batched)
    assert [p.records for p in progress] == [2, 5]
    assert [p.bytes_read for p in progress] == sorted(p.bytes_read for p in progress)
    assert progress[-1].bytes_read == len(sample.data)
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "registry.items.imported")
    ).all()
    assert len(events) == 2
    details = [json.loads(e.details) for e in events]
    assert [d["added"] for d in details] == [2, 1]
    assert details[0]["first_seq"] == summary.first_seq
    assert details[-1]["last_seq"] == summary.last_seq
    assert all(len(d["changes_sha256"]) == 64 for d in details)
    assert audit.verify(session).ok


def test_jsonl_round_trip_is_lossless(session):
    police = registry.create_set(session, "police", default_category="national")
    a = registry.add_item(
        session, police, [("md5", samples.md5()), ("pdq", samples.pdq())], category="A1",
        reference="4711", note="from case 12 ✓",
    ).item  # fmt: skip
    b = registry.add_item(session, police, [("photodna", samples.photodna())]).item
    c = registry.add_item(session, police, [("sha256", samples.sha256())], category="7",
                          category_scheme="vic").item  # fmt: skip
    registry.withdraw_item(session, b.id, reason="taken back by the source")
    session.commit()
    first = io.StringIO()
    assert registry.export_set(session, police, first, "jsonl") == 3

    copy = registry.create_set(session, "copy")
    session.commit()
    summary = registry.import_stream(session, copy, io.BytesIO(first.getvalue().encode()))
    assert (summary.added, summary.rejected) == (3, 0)
    second = io.StringIO()
    registry.export_set(session, copy, second, "jsonl")

    def without_ids(text: str) -> list[dict]:
        return [
            {k: v for k, v in json.loads(line).items() if k != "id"} for line in text.splitlines()
        ]

    assert without_ids(second.getvalue()) == without_ids(first.getvalue())
    lines = without_ids(first.getvalue())
    assert lines[0]["note"] == "from case 12 ✓" and lines[0]["category_raw"] == "A1"
    assert lines[1]["status"] == "withdrawn" and lines[1]["category"] == "csam_national"
    assert lines[2]["category"] == "unknown" and lines[2]["category_scheme"] == "vic:vics"
    assert {a.id, c.id} <= {json.loads(line)["id"] for line in first.getvalue().splitlines()}


def test_vics_round_trip_keeps_signals_and_categories(session):
    sample = samples.vics_20_cases()
    source = registry.create_set(session, "source")
    session.commit()
    registry.import_stream(session, source, io.BytesIO(sample.data))
    registry.add_item(session, source, [("md5", samples.md5())], category="baseline")
    session.commit()
    exported = io.StringIO()
    assert registry.export_set(session, source, exported, "vics") == 4
    doc = json.loads(exported.getvalue())
    assert doc["@odata.context"].endswith("2.0.xml/Default/$metadata#Media")
    assert {m["Category"] for m in doc["value"]} == {1, 2, 4}

    copy = registry.create_set(session, "copy")
    session.commit()
    summary = registry.import_stream(session, copy, io.BytesIO(exported.getvalue().encode()))
    assert (summary.format, summary.added, summary.rejected) == ("vics", 4, 0)

    def content(set_name: str) -> set[tuple]:
        return {(i.signals, i.category) for i in registry.iter_items(session, set_name)}

    assert content("copy") == content("source")  # baseline stays baseline through VICS


def test_te_csv_and_plain_exports_read_back(session):
    police = registry.create_set(session, "police")
    registry.add_item(session, police, [("pdq", samples.pdq()), ("md5", samples.md5())],
                      category="A2")  # fmt: skip
    registry.add_item(session, police, [("md5", samples.md5())], category="NEGATIVE_CLASS")
    session.commit()
    for name in ("te-csv", "plain", "icse"):
        out = io.StringIO()
        registry.export_set(session, police, out, name)
        copy = registry.create_set(session, f"copy-{name}", default_category="csam")
        session.commit()
        summary = registry.import_stream(session, copy, io.BytesIO(out.getvalue().encode()))
        assert summary.format == name and summary.rejected == 0, out.getvalue()
        values = {v for i in registry.iter_items(session, copy) for v in i.signals}
        original = {v for i in registry.iter_items(session, police) for v in i.signals}
        assert values == original if name != "icse" else values < original
    te_categories = {i.category for i in registry.iter_items(session, "copy-te-csv")}
    assert te_categories == {"csam_baseline", "non_pertinent"}  # kept through the tags


def test_exports_carry_only_active_items_except_jsonl(session):
    police = registry.create_set(session, "police")
    keep = registry.add_item(session, police, [("md5", samples.md5())]).item
    gone = registry.add_item(session, police, [("md5", samples.md5())]).item
    registry.disable_item(session, gone.id)
    session.commit()
    out = io.StringIO()
    assert registry.export_set(session, police, out, "plain") == 1
    assert keep.signals[0][1] in out.getvalue() and gone.signals[0][1] not in out.getvalue()
    assert registry.export_set(session, police, io.StringIO(), "jsonl") == 2
    everything = registry.export_set(
        session, police, io.StringIO(), "vics", statuses=["active", "disabled"]
    )
    assert everything == 2


def test_vic_category_numbers_per_profile():
    def item(code, raw=None, scheme=None) -> ExportItem:
        return ExportItem(1, None, code, raw, scheme, "active", None, (("md5", "0" * 32),))

    assert vic_category(item("csam_baseline"), "vics") == 1
    assert vic_category(item("non_pertinent"), "us") == 0
    assert vic_category(item("non_pertinent"), "vics") is None
    assert vic_category(item("uncategorised", "0", "vic:vics"), "vics") == 0
    assert vic_category(item("ncii"), "vics") is None

"""Triage of a seized collection: every file's class, the matches, the groups of new material,
the outputs, reviewers' decisions exported into the registry, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from meldpunt.registry.formats import vics
from meldpunt.registry.records import ReadOptions
from meldpunt.store.models import AuditEvent
from meldpunt.triage import (
    BadInput,
    CaseConflict,
    LocalHasher,
    decide,
    export,
    plan_from,
    rule_from,
    run_case,
    summary,
    write_all,
    write_jsonl,
)
from meldpunt.triage.cases import get_case, groups_of, iter_files
from triage_support import EXPECTED, Collection, build, seed_registry


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Collection:
    return build(tmp_path_factory.mktemp("seized"))


def _run(settings, engine, collection, name="case-1", workers=1, **kwargs):
    return run_case(name, [collection.root], plan=plan_from(settings), rule=rule_from(settings),
                    hasher=LocalHasher(workers), bind=sessionmaker(engine), batch_files=4,
                    **kwargs)  # fmt: skip


def _classes(session, name):
    case = get_case(session, name)
    return {row.path: row.file_class for row in iter_files(session, case.id)}


def test_every_file_is_known_ignorable_new_or_an_error(settings, engine, session, collection):
    seed_registry(session, collection)
    report = _run(settings, engine, collection)
    assert report.state == "done"
    assert report.hashed == report.files_total == 20  # top-level files; archives count once
    found = _classes(session, "case-1")
    assert {p: (c, found.get(p)) for p, c in EXPECTED.items() if found.get(p) != c} == {}
    assert found == EXPECTED
    rows = {row.path: row for row in iter_files(session, get_case(session, "case-1").id)}
    astronaut = rows["phone/photos/astronaut.jpg"].matches[0]
    assert (astronaut["set"], astronaut["category"]) == ("known", "csam_baseline")
    assert astronaut["distance"] <= 2
    assert rows["phone/photos/astronaut_mirrored.jpg"].matches[0]["distance"] <= 31
    assert rows["phone/photos/chelsea.png"].matches[0]["category"] == "csam_national"
    assert rows["phone/photos/chelsea.png"].matches[0]["signal"] == "sha256"
    known_video = rows["phone/video/known.mp4"]
    assert known_video.matches[0]["category"] == "csam_baseline"  # A1
    assert known_video.frames_matched == len(known_video.frames) >= 3
    brick = rows["phone/video/brick.mkv"]
    assert brick.frames_matched and brick.frames_matched == len(brick.frames)
    assert rows["phone/video/new.webm"].frames_matched == 0
    assert rows["phone/docs/truncated.jpg"].error_code == "corrupt_image"
    assert rows["phone/video/broken.mp4"].error_code == "corrupt_video"
    assert rows["phone/damaged.zip"].error_code == "corrupt_archive"
    # what a damaged archive held before the damage is still there, once
    assert all(row.sha256 for row in rows.values() if row.file_class != "error")


def test_new_material_is_grouped_and_exact_copies_collapse(settings, engine, session, collection):
    seed_registry(session, collection)
    _run(settings, engine, collection)
    case = get_case(session, "case-1")
    rows = {row.path: row for row in iter_files(session, case.id, "new")}
    group = {path: row.group for path, row in rows.items()}
    assert None not in group.values()
    # the camera, its recompressed copy and its copy two archives deep: one group
    camera = group["phone/photos/camera.png"]
    assert group["phone/photos/camera_q40.jpg"] == camera
    assert group["phone/backup.zip/old.tar.gz/camera.png"] == camera
    # gravel and its copy (a path trick in a zip) collapse; the generated picture and its copy
    # in a 7z inside a tar.gz inside a zip too
    assert (
        group["phone/backup.zip/%2E%2E/%2E%2E/etc/gravel.jpg"] == group["phone/photos/gravel.jpg"]
    )
    assert group["phone/backup.zip/old.tar.gz/more.7z/generated copy.png"] == group[
        "phone/photos/generated.png"]  # fmt: skip
    assert len({camera, group["phone/photos/gravel.jpg"], group["phone/photos/generated.png"],
                group["phone/video/new.webm"]}) == 4  # fmt: skip
    groups = {g.number: g for g in groups_of(session, case.id)}
    assert len(groups) == 4
    assert (groups[camera].files, groups[camera].distinct_files) == (3, 2)
    assert groups[camera].representative == "phone/backup.zip/old.tar.gz/camera.png"  # lossless
    assert sum(g.files for g in groups.values()) == len(rows)


def test_outputs_summary_csv_jsonl_vics_and_page(settings, engine, session, collection, tmp_path):
    seed_registry(session, collection)
    _run(settings, engine, collection)
    written = write_all(session, "case-1", tmp_path / "out")
    figures = json.loads(written["summary"].read_text())
    assert figures["classes"] == {"known": 8, "ignorable": 8, "new": 8, "error": 3}
    assert figures["known_by_category"] == {"csam_baseline": 7, "csam_national": 1}
    assert figures["errors"] == {"corrupt_image": 1, "corrupt_video": 1, "corrupt_archive": 1}
    assert figures["groups"]["count"] == 4 and figures["seconds"] > 0
    page = written["page"].read_text()
    assert page.count("<svg") == 2 and "<img" not in page and "<script" not in page
    with open(written["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["path"]: r["class"] for r in rows} == EXPECTED
    out = io.StringIO()
    assert write_jsonl(session, get_case(session, "case-1").id, out) == len(EXPECTED)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert set(lines[0]) == {"path", "sha256", "class", "kind", "matches", "group", "error"}
    by_path = {line["path"]: line for line in lines}
    assert by_path["phone/photos/chelsea.png"]["matches"] == [
        {"set": "known", "entry": by_path["phone/photos/chelsea.png"]["matches"][0]["entry"],
         "category": "csam_national", "distance": 0}]  # fmt: skip
    assert by_path["phone/docs/truncated.jpg"]["error"]["code"] == "corrupt_image"
    assert by_path["phone/photos/gravel.jpg"]["group"] is not None
    # VICS 2.0, read back by the registry's own reader: one record per distinct known file
    with open(written["vics"], "rb") as handle:
        records = list(vics.read(handle, ReadOptions()))
    known_sha = {r.sha256 for r in iter_files(session, get_case(session, "case-1").id, "known")}
    assert len(records) == len(known_sha) == 6
    assert {r.category_code for r in records} == {"csam_baseline", "csam_national"}
    groups = json.loads(written["groups"].read_text())["groups"]
    assert sorted(g["files"] for g in groups) == [1, 2, 2, 3]


def test_decisions_exported_make_the_material_known_next_time(settings, engine, session,
                                                              collection):  # fmt: skip
    from meldpunt import registry

    seed_registry(session, collection)
    _run(settings, engine, collection)
    case = get_case(session, "case-1")
    rows = {row.path: row for row in iter_files(session, case.id, "new")}
    camera = rows["phone/photos/camera.png"].group
    gravel = rows["phone/photos/gravel.jpg"].group
    video = rows["phone/video/new.webm"].group
    with pytest.raises(BadInput):
        decide(session, "case-1", camera, "illegal", actor="reviewer")  # no category
    with pytest.raises(BadInput):
        decide(session, "case-1", camera, "illegal", category="nonsense\x00", actor="reviewer")
    decide(session, "case-1", camera, "illegal", category="baseline", actor="reviewer")
    decide(session, "case-1", video, "illegal", category="csam_national", actor="reviewer")
    decide(session, "case-1", gravel, "not_illegal", actor="reviewer")
    registry.create_set(session, "from-cases", actor="test")
    with pytest.raises(BadInput):  # not illegal goes into an allow-list
        export(session, "case-1", "from-cases", "not_illegal", actor="reviewer")
    result = export(session, "case-1", "from-cases", "illegal", actor="reviewer")
    assert (result.groups, result.items) == (2, 3)  # camera (2 distinct) and the video
    assert export(session, "case-1", "harmless", "not_illegal", actor="reviewer").items == 1
    assert export(session, "case-1", "from-cases", "illegal", actor="reviewer").groups == 0
    session.commit()
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"triage.group.decided", "triage.groups.exported", "triage.case.created"} <= actions
    session.commit()  # end the read, so the session sees the next run's rows
    _run(settings, engine, collection, name="case-2")
    again = _classes(session, "case-2")
    for path, was in EXPECTED.items():
        if "camera" in path or "new.webm" in path:
            assert again[path] == "known", path
        elif "gravel" in path:
            assert again[path] == "ignorable", path
        else:
            assert again[path] == was, path


def test_a_pool_of_processes_gives_the_same_result(settings, engine, session, collection):
    seed_registry(session, collection)
    _run(settings, engine, collection, workers=2)
    assert _classes(session, "case-1") == EXPECTED


def test_a_case_continues_only_with_its_own_sources(settings, engine, session, collection,
                                                     tmp_path):  # fmt: skip
    _run(settings, engine, collection)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(CaseConflict):
        run_case("case-1", [other], plan=plan_from(settings), rule=rule_from(settings),
                 hasher=LocalHasher(1), bind=sessionmaker(engine))  # fmt: skip
    with pytest.raises(BadInput):
        run_case("bad\x00name", [other], plan=plan_from(settings), rule=rule_from(settings),
                 hasher=LocalHasher(1), bind=sessionmaker(engine))  # fmt: skip
    with pytest.raises(BadInput):
        run_case("x", [tmp_path / "missing"], plan=plan_from(settings), rule=rule_from(settings),
                 hasher=LocalHasher(1), bind=sessionmaker(engine))  # fmt: skip
    # a second run of a finished case hashes nothing and changes nothing
    session.commit()
    report = _run(settings, engine, collection)
    assert (report.hashed, report.skipped) == (0, 20)
    assert summary(session, "case-1")["runs"] == 2

"""A case's outputs: the summary (JSON, and an HTML page with charts), every file as CSV and
as JSON Lines, the known and decided material as VICS 2.0 JSON, and the groups of new material.

No output holds a picture: paths, digests, hashes, classes and decisions only.
"""

from __future__ import annotations

import csv
import html
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from meldpunt.registry.categories import CODES
from meldpunt.registry.formats import vics
from meldpunt.registry.records import ExportItem
from meldpunt.triage import cases
from meldpunt.triage.cases import FileRow
from meldpunt.triage.vocabulary import Decision, FileClass

CSV_FIELDS = ["path", "class", "kind", "size", "md5", "sha1", "sha256", "pdq", "pdq_quality",
              "frames", "frames_matched", "group", "set", "entry", "category", "distance",
              "error_code", "error"]  # fmt: skip


def file_record(row: FileRow) -> dict[str, Any]:
    """One file as ``--format jsonl`` prints it."""
    return {
        "path": row.path,
        "sha256": row.sha256,
        "class": row.file_class,
        "kind": row.kind,
        "matches": [
            {k: m[k] for k in ("set", "entry", "category", "distance", "frames") if k in m}
            for m in row.matches
        ] if row.file_class == FileClass.known else [],
        "group": row.group,
        "error": {"code": row.error_code, "message": row.error} if row.error_code else None,
    }  # fmt: skip


def write_jsonl(session: Session, case_id: int, out: TextIO) -> int:
    count = 0
    for row in cases.iter_files(session, case_id):
        out.write(json.dumps(file_record(row), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(session: Session, case_id: int, out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in cases.iter_files(session, case_id):
        best = row.matches[0] if row.matches and row.file_class == FileClass.known else {}
        writer.writerow({
            "path": row.path, "class": row.file_class, "kind": row.kind, "size": row.size,
            "md5": row.md5, "sha1": row.sha1, "sha256": row.sha256, "pdq": row.pdq,
            "pdq_quality": row.pdq_quality, "frames": len(row.frames) or None,
            "frames_matched": row.frames_matched, "group": row.group,
            "set": best.get("set"), "entry": best.get("entry"),
            "category": best.get("category"), "distance": best.get("distance"),
            "error_code": row.error_code, "error": row.error,
        })  # fmt: skip
        count += 1
    return count


def summary(session: Session, name: str) -> dict[str, Any]:
    """Counts by class, kind and category, errors by code, groups, time taken."""
    case = cases.get_case(session, name)
    classes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    sets: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for row in cases.iter_files(session, case.id):
        classes[row.file_class] += 1
        kinds[row.kind] += 1
        if row.file_class == FileClass.known and row.matches:
            categories[row.matches[0]["category"]] += 1
            sets[row.matches[0]["set"]] += 1
        if row.file_class == FileClass.error:
            errors[row.error_code or "error"] += 1
    groups = cases.groups_of(session, case.id)
    files = sum(classes.values())
    return {
        "case": case.name,
        "sources": json.loads(case.sources),
        "state": case.state,
        "runs": case.runs,
        "created_at": case.created_at.isoformat(),
        "finished_at": case.finished_at.isoformat() if case.finished_at else None,
        "seconds": round(float(case.seconds), 3),
        "files": files,
        "files_per_second": round(files / case.seconds, 1) if case.seconds else None,
        "registry_change": case.registry_seq,
        "classes": {c.value: classes.get(c.value, 0) for c in FileClass},
        "kinds": dict(sorted(kinds.items())),
        "known_by_category": dict(categories.most_common()),
        "known_by_set": dict(sets.most_common()),
        "errors": dict(errors.most_common()),
        "groups": {
            "count": len(groups),
            "files": sum(g.files for g in groups),
            "largest": max((g.files for g in groups), default=0),
            "decided": sum(1 for g in groups if g.decision),
        },
    }


def groups_json(session: Session, name: str) -> dict[str, Any]:
    case = cases.get_case(session, name)
    members: dict[int, list[str]] = {}
    for row in cases.iter_files(session, case.id, FileClass.new):
        if row.group is not None:
            members.setdefault(row.group, []).append(row.path)
    return {
        "case": case.name,
        "groups": [
            {"group": g.number, "kind": g.kind, "files": g.files, "distinct": g.distinct_files,
             "representative": g.representative, "decision": g.decision,
             "category": g.category, "exported_to": g.exported_to,
             "paths": members.get(g.number, [])}
            for g in cases.groups_of(session, case.id)
        ],
    }  # fmt: skip


def vics_items(session: Session, case_id: int) -> Iterator[ExportItem]:
    """Known files (their best match's category) and new files of groups decided illegal
    (the decision's category), one VICS media record per distinct SHA-256."""
    decided = {
        g.number: g.category for g in cases.groups_of(session, case_id)
        if g.decision == Decision.illegal and g.category
    }  # fmt: skip
    seen: set[str] = set()
    number = 0
    for row in cases.iter_files(session, case_id):
        if row.sha256 is None or row.sha256 in seen:
            continue
        if row.file_class == FileClass.known and row.matches:
            category = str(row.matches[0]["category"])
        elif row.file_class == FileClass.new and row.group in decided:
            category = str(decided[row.group])
        else:
            continue
        seen.add(row.sha256)
        number += 1
        signals = [(k, v) for k, v in (("md5", row.md5), ("sha1", row.sha1),
                                       ("sha256", row.sha256), ("pdq", row.pdq)) if v]  # fmt: skip
        yield ExportItem(number, None, category if category in CODES else "unknown", None, None,
                         "active", row.path, tuple(signals))  # fmt: skip


def write_vics(session: Session, case_id: int, out: TextIO) -> int:
    return vics.write(vics_items(session, case_id), out)


def _charts(figures: dict[str, Any]) -> list[str]:
    import altair as alt
    import vl_convert

    colours = {"known": "#cf222e", "new": "#0969da", "ignorable": "#6e7781", "error": "#bf8700"}
    rows = [{"class": k, "files": v} for k, v in figures["classes"].items()]
    by_class = alt.Chart(alt.Data(values=rows), title="files by class").mark_bar().encode(
        x=alt.X("files:Q"), y=alt.Y("class:N", sort=list(colours)),
        color=alt.Color("class:N", scale=alt.Scale(domain=list(colours),
                                                   range=list(colours.values())), legend=None),
    ).properties(width=420, height=120)  # fmt: skip
    charts = [by_class]
    if figures["known_by_category"]:
        rows = [{"category": k, "files": v} for k, v in figures["known_by_category"].items()]
        charts.append(alt.Chart(alt.Data(values=rows), title="known files by category")
                      .mark_bar(color="#cf222e")
                      .encode(x="files:Q", y=alt.Y("category:N", sort="-x"))
                      .properties(width=420, height=24 * len(rows) + 20))  # fmt: skip
    return [vl_convert.vegalite_to_svg(chart.to_dict()) for chart in charts]


def write_html(figures: dict[str, Any], out: TextIO) -> None:
    """The summary as a page that stands alone (inline SVG charts, no script, no picture)."""
    e = html.escape

    def table(title: str, counts: dict[str, Any]) -> str:
        rows = [f"<tr><td>{e(str(k))}</td><td class=n>{v:,}</td></tr>" for k, v in counts.items()]
        body = "".join(rows) or "<tr><td colspan=2>none</td></tr>"
        return f"<h2>{e(title)}</h2><table>{body}</table>"

    charts = "".join(f"<figure>{svg}</figure>" for svg in _charts(figures))
    groups = figures["groups"]
    out.write(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>meldpunt triage: {e(figures['case'])}</title><style>"
        "body{font:15px system-ui,sans-serif;margin:2em;max-width:60em}"
        "td{padding:.2em 1em .2em 0}.n{text-align:right}</style></head><body>"
        f"<h1>Case {e(figures['case'])}</h1>"
        f"<p>{figures['files']:,} files from {e(', '.join(figures['sources']))}; "
        f"{e(figures['state'])} after {figures['runs']} run(s), {figures['seconds']:,} s "
        f"({figures['files_per_second'] or 0:,} files/s); registry at change "
        f"{figures['registry_change']}.</p>"
        f"{charts}"
        + table("Files by class", figures["classes"])
        + table("Known files by category", figures["known_by_category"])
        + table("Known files by set", figures["known_by_set"])
        + table("Errors", figures["errors"])
        + f"<h2>New material</h2><p>{groups['files']:,} new files in {groups['count']:,} "
        f"groups (largest {groups['largest']:,}); {groups['decided']:,} groups decided.</p>"
        "</body></html>\n"
    )


def write_all(session: Session, name: str, folder: Path) -> dict[str, Path]:
    """Every output of the case into ``folder``; returns what was written where."""
    folder.mkdir(parents=True, exist_ok=True)
    case = cases.get_case(session, name)
    figures = summary(session, name)
    written = {}
    with open(folder / "summary.json", "w", encoding="utf-8") as out:
        json.dump(figures, out, indent=2, ensure_ascii=False)
    written["summary"] = folder / "summary.json"
    with open(folder / "summary.html", "w", encoding="utf-8") as out:
        write_html(figures, out)
    written["page"] = folder / "summary.html"
    with open(folder / "files.csv", "w", encoding="utf-8", newline="") as out:
        write_csv(session, case.id, out)
    written["csv"] = folder / "files.csv"
    with open(folder / "vics.json", "w", encoding="utf-8") as out:
        write_vics(session, case.id, out)
    written["vics"] = folder / "vics.json"
    with open(folder / "groups.json", "w", encoding="utf-8") as out:
        json.dump(groups_json(session, name), out, indent=1, ensure_ascii=False)
    written["groups"] = folder / "groups.json"
    return written

"""``meldpunt reports ...``: reports of URLs to the hotline, from the command line (thin).

    meldpunt reports import scart-export.csv              # format recognised from the content
    meldpunt reports import flagged.jsonl --kind csam     # kind of lines that name none
    meldpunt reports show MP-7KQ2-X9RD

The database is the configured one (``database_url``), migrated on first use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from meldpunt.cli.common import fail as _fail
from meldpunt.cli.common import group, is_narrow
from meldpunt.cli.common import stderr as _stderr
from meldpunt.cli.common import stdout as _stdout
from meldpunt.cli.common import table as _table
from meldpunt.reports.vocabulary import ReportKind

__all__ = ["reports_app"]

ACTOR = "cli"

reports_app = group("Reports of URLs to the hotline: import SCART or JSONL files, show a report.")


class ImportFormat(StrEnum):
    auto = "auto"
    scart = "scart"
    jsonl = "jsonl"


class ShowFormat(StrEnum):
    table = "table"
    json = "json"


@contextmanager
def _session() -> Iterator[Any]:
    from meldpunt.reports.errors import ReportsError
    from meldpunt.store import init_db, session_scope

    init_db()
    try:
        with session_scope() as session:
            yield session
    except ReportsError as exc:
        _fail(str(exc))


@contextmanager
def _progress_bar(total: int, show: bool) -> Iterator[Callable[[Any], None] | None]:
    """A progress bar on stderr over the file's bytes, while ``show``."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    columns = ("importing", BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_stderr(), transient=True) as progress:
        task = progress.add_task("importing", total=total)
        yield lambda summary: progress.update(task, completed=summary.bytes_read)


@reports_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A SCART export (;-separated) or JSON lines.")],
    import_format: Annotated[
        ImportFormat, typer.Option("--format", "-f", help="auto, scart or jsonl.")
    ] = ImportFormat.auto,
    kind: Annotated[
        ReportKind | None,
        typer.Option("--kind", help="Kind of lines without a type (csam, ncii or other)."),
    ] = None,
) -> None:
    """Import reports: each good line's URL is taken (an open URL is linked to its item), each
    bad line is listed with its number. Exit code 1 when nothing was taken."""
    from meldpunt.reports.importing import import_reports

    if not file.is_file():
        _fail(f"no such file: {file}", code=2)
    bar = _progress_bar(file.stat().st_size, sys.stderr.isatty())
    with _session() as session, open(file, "rb") as stream, bar as progress:
        summary = import_reports(session, stream, actor=ACTOR, format=import_format.value,
                                 kind=kind.value if kind else None,
                                 progress=progress)  # fmt: skip
    console = _stdout()
    console.print(
        f"{summary.lines:,} lines read as {summary.format}: {summary.reports:,} reports, "
        f"{summary.received:,} new URLs, {summary.linked:,} linked to open items, "
        f"{summary.duplicates:,} repeated, {summary.rejected:,} rejected",
        highlight=False,
    )
    for problem in summary.problems:
        console.print(f"line {problem.line}: {problem.reason}", markup=False, highlight=False,
                      soft_wrap=True)  # fmt: skip
    if summary.rejected > len(summary.problems):
        console.print(f"(the first {len(summary.problems)} of {summary.rejected:,} are listed)")
    if summary.taken == 0:
        raise typer.Exit(1)


@reports_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="The report's reference, e.g. MP-7KQ2-X9RD.")],
    output_format: Annotated[
        ShowFormat, typer.Option("--format", "-f", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Show a report: who sent it, what it says, and each URL's state and timeline."""
    from meldpunt.reports.views import report_details

    with _session() as session:
        view = report_details(session, ref)
    if output_format is ShowFormat.json:
        record = {
            "id": view.id, "ref": view.ref, "source": view.source, "kind": view.kind,
            "created_at": view.created_at.isoformat(), "reference": view.flagger_ref,
            "org_id": view.org_id, "reporter_name": view.reporter_name,
            "reporter_email": view.reporter_email, "good_faith": view.good_faith,
            "note": view.note,
            "urls": [{"position": u.position, "url": u.url, "given": u.given,
                      "referer": u.referer, "item_id": u.item_id, "state": u.state,
                      "media": u.media,
                      "events": [{"at": at.isoformat(), "event": e} for at, e in u.events]}
                     for u in view.urls],
        }  # fmt: skip
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return
    console = _stdout()
    facts = [
        ("reference", view.ref),
        ("received", view.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("source", view.source + (f" (organisation {view.org_id})" if view.org_id else "")),
        ("kind", view.kind),
        ("their reference", view.flagger_ref or ""),
        ("reporter", " ".join(filter(None, [view.reporter_name, view.reporter_email]))),
        ("good faith", "stated" if view.good_faith else "not stated"),
        ("note", view.note or ""),
    ]
    for name, value in facts:
        if value:
            console.print(f"{name + ':':<17}{value}", markup=False, highlight=False)
    narrow = is_narrow(console)
    table = _table(f"{len(view.urls)} URLs")
    table.add_column("item", justify="right", no_wrap=True)
    table.add_column("url", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("last event" if narrow else "timeline", overflow="fold")
    for u in view.urls:
        events = u.events[-1:] if narrow else u.events
        timeline = ", ".join(f"{e} {at:%m-%d %H:%M}" for at, e in events)
        if u.media:
            timeline += " · media: " + ", ".join(f"{n} {s}" for s, n in sorted(u.media.items()))
        table.add_row(str(u.item_id), u.url, u.state, timeline)
    console.print(table)

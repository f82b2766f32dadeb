"""``meldpunt dsa ...``: the DSA exports (``docs/dsa.md``).

    meldpunt dsa statements example-platform --since 2026-01-01 --until 2026-02-01 --out sor/
    meldpunt dsa statements example-platform --since 2026-01-01 --until 2026-02-01 --format jsonl
    meldpunt dsa flagger-report --year 2026 --format html --output report.html

``statements`` writes one platform's statements of reasons for the DSA Transparency Database:
``batch-0001.json``, ... (each ``{"statements": [...]}``, at most 100, a body for the
database's ``POST /api/v1/statements``) and ``summary.json``; or one statement a line.
The database is the configured one (``database_url``), migrated on first use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meldpunt.cli.common import fail, group, registry_session, stderr

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["dsa_app"]

dsa_app = group("The DSA: statements of reasons for platforms, the trusted flagger's report.")


class StatementFormat(StrEnum):
    batches = "batches"
    jsonl = "jsonl"


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


class Automation(StrEnum):
    fully = "fully"
    partially = "partially"
    not_automated = "not_automated"


@contextmanager
def dsa_session() -> Iterator[Session]:
    """The configured database's session; any of meldpunt's errors ends the command."""
    from meldpunt.errors import MeldpuntError

    try:
        with registry_session() as session:
            yield session
    except MeldpuntError as exc:
        fail(str(exc))


@dsa_app.command("statements")
def statements_command(
    org: Annotated[str, typer.Argument(help="The platform (organisation name or id).")],
    since: Annotated[str, typer.Option("--since", help="From this date (YYYY-MM-DD, UTC).")],
    until: Annotated[
        str, typer.Option("--until", help="Up to this date, not including it (YYYY-MM-DD, UTC).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="The folder for batch-NNNN.json and summary.json.")
    ] = None,
    data_format: Annotated[
        StatementFormat,
        typer.Option("--format", "-f", help="batches (files in --out) or jsonl (standard output)."),
    ] = StatementFormat.batches,
    automation: Annotated[
        Automation,
        typer.Option("--automated-decision", help="How automated the platform's decisions were."),
    ] = Automation.partially,
) -> None:
    """A platform's statements of reasons for the hits it removed or blocked, in the DSA
    Transparency Database's schema, validated, in batches of at most 100."""
    from meldpunt.monitor import dsa

    if data_format == StatementFormat.batches and out is None:
        fail("give --out FOLDER for the batch files, or --format jsonl for standard output")
    options = dsa.StatementOptions(automated_decision=f"AUTOMATED_DECISION_{automation.upper()}")
    with dsa_session() as session:
        counts = dsa.statement_counts(session, org, since, until)
        if data_format == StatementFormat.jsonl:
            for batch in dsa.batches(session, org, since, until, options):
                for statement in batch.statements:
                    sys.stdout.write(json.dumps(statement, ensure_ascii=False) + "\n")
            return
        assert out is not None
        folder = _folder(out)
        written = _write_batches(session, org, since, until, options, folder, counts.batches)
    summary = {"org": org, "since": since, "until": until, "files": written, **counts.plain()}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    skipped = sum(counts.skipped.values())
    stderr().print(
        f"{counts.statements:,} statements in {len(written):,} batches in {folder}"
        + (f"; {skipped:,} outcomes make none (summary.json says why)" if skipped else ""),
        highlight=False,
    )


def _folder(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        fail(f"{out} is not a folder")
    if out.is_dir() and any(out.glob("batch-*.json")):
        fail(f"{out} holds batch files already; give an empty folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot make {out}: {exc.strerror or exc}")
    return out


def _write_batches(
    session: Session,
    org: str,
    since: str,
    until: str,
    options: object,
    folder: Path,
    total: int,
) -> list[str]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from meldpunt.monitor import dsa

    assert isinstance(options, dsa.StatementOptions)
    written: list[str] = []
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    show = sys.stderr.isatty()
    with Progress(*columns, console=stderr(), transient=True, disable=not show) as progress:
        task = progress.add_task("batches", total=total)
        for batch in dsa.batches(session, org, since, until, options):
            name = f"batch-{batch.number:04d}.json"
            text = json.dumps(batch.body(), ensure_ascii=False, indent=1) + "\n"
            (folder / name).write_text(text, encoding="utf-8")
            written.append(name)
            progress.advance(task)
    return written


@dsa_app.command("flagger-report")
def flagger_report_command(
    year: Annotated[int, typer.Option("--year", help="The calendar year (UTC).")],
    data_format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.json,
    output: Annotated[
        str, typer.Option("--output", "-o", help="The file to write, or - for standard output.")
    ] = "-",
) -> None:
    """The hotline's yearly report as trusted flagger (Art. 22(3) DSA): notices per hoster,
    type of content and action taken; the HTML is printable and states its method."""
    from meldpunt.config import get_settings
    from meldpunt.monitor import transparency

    with dsa_session() as session:
        report = transparency.flagger_report(session, year, flagger=get_settings().hotline_name)
    if data_format == ReportFormat.csv:
        text = transparency.report_csv(report)
    elif data_format == ReportFormat.html:
        text = transparency.report_html(report)
    else:
        text = json.dumps(transparency.report_json(report), indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")

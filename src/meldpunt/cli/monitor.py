"""``meldpunt monitor ...``: the public monitor's tables for scripts, and its upkeep.

    meldpunt monitor export --by hoster --period month --at 2026-03 --format csv
    meldpunt monitor export --by platform --period year --format json --names all
    meldpunt monitor refresh
    meldpunt monitor rebuild
    meldpunt monitor verify

``export`` prints the same tables as the public pages (``/monitor``) and the API
(``/v1/monitor/...``); ``--names all`` names every hoster and platform, for the operator.
``verify`` brings the figures up to date, computes them again from the raw rows in DuckDB and
lists every difference (exit status 1 if there is any).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from meldpunt.cli.common import fail, group, stderr

__all__ = ["monitor_app"]

monitor_app = group("The public monitor: figures per hoster and platform, per period.")


class By(StrEnum):
    hoster = "hoster"
    platform = "platform"


class PeriodKind(StrEnum):
    month = "month"
    quarter = "quarter"
    year = "year"


class Format(StrEnum):
    json = "json"
    csv = "csv"


class Names(StrEnum):
    public = "public"
    all = "all"


def _sessions():  # type: ignore[no-untyped-def]
    from meldpunt.store import init_db, session_scope

    init_db()
    return session_scope


@monitor_app.command("export")
def export_command(
    by: Annotated[By, typer.Option("--by", help="One row per hoster or per platform.")] = By.hoster,
    period: Annotated[
        PeriodKind, typer.Option("--period", help="Figures per month, quarter or year.")
    ] = PeriodKind.month,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Which period: 2026-03, 2026-Q1, 2026 (default: the latest)."),
    ] = None,
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.json,
    names: Annotated[
        Names,
        typer.Option("--names", help="public: the naming rule, as on the pages; all: operator."),
    ] = Names.public,
) -> None:
    """Print one table: the same rows as the public page (all of them, not one page)."""
    from meldpunt.config import get_settings
    from meldpunt.errors import MeldpuntError
    from meldpunt.monitor.tables import hoster_table, platform_table, table_csv, table_json

    sessions = _sessions()
    make = hoster_table if by == By.hoster else platform_table
    try:
        with sessions() as session:
            table = make(session, period.value, at, settings=get_settings(),
                         public=names == Names.public)  # fmt: skip
    except MeldpuntError as exc:
        fail(str(exc))
    if output_format == Format.csv:
        sys.stdout.write(table_csv(table))
    else:
        sys.stdout.write(json.dumps(table_json(table), indent=2) + "\n")


@monitor_app.command("refresh")
def refresh_command() -> None:
    """Bring the figures up to date with what changed since the last refresh."""
    from meldpunt.monitor.figures import refresh

    print(f"{refresh(_sessions())} group(s) recomputed")


@monitor_app.command("rebuild")
def rebuild_command() -> None:
    """Compute every figure again from the raw rows (a progress bar on stderr)."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from meldpunt.monitor.figures import rebuild

    columns = ("[progress.description]{task.description}", BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task("rebuilding", total=None)

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        written = rebuild(_sessions(), progress=progress)
    print(f"{written} group(s) written")


@monitor_app.command("verify")
def verify_command(
    no_refresh: Annotated[
        bool, typer.Option("--no-refresh", help="Compare the figures as they are, unrefreshed.")
    ] = False,
) -> None:
    """Compute every table again in DuckDB from the raw rows and compare (exit 1 if any differ)."""
    from meldpunt import clock
    from meldpunt.monitor.figures import refresh
    from meldpunt.monitor.reference import compare, reference_tables, stored_tables

    sessions = _sessions()
    if not no_refresh:
        refresh(sessions)
    now = clock.now()
    with sessions() as session:
        expected = reference_tables(session, now=now)
        stored = stored_tables(session)
    problems = compare(expected, stored)
    if problems:
        for line in problems:
            print(line)
        fail(f"{len(problems)} difference(s) between the stored figures and DuckDB's")
    groups = sum(len(rows) for rows in expected.values())
    print(f"ok: {groups} group(s) equal to DuckDB's")

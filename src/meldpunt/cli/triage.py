"""`meldpunt triage` (scan a seized collection) and `meldpunt triage-case ...` (its outputs,
groups, reviewers' decisions and their export into the registry)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meldpunt.cli.common import fail, group, registry_session, stderr, stdout, table

if TYPE_CHECKING:
    from rich.progress import Task
    from rich.text import Text

case_app = group("Triage cases: outputs, groups of new material, decisions, export.")


class TriageFormat(StrEnum):
    summary = "summary"
    jsonl = "jsonl"


def _progress_bar() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f} files/s" if speed else "- files/s", style="cyan")

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=False,
    )


def triage_command(
    sources: Annotated[list[Path], typer.Argument(help="Folders and files (archives included).")],
    case: Annotated[str, typer.Option("--case", help="The case's name; run it again to resume.")],
    output_format: Annotated[
        TriageFormat,
        typer.Option("--format", "-f", help="summary (a table) or jsonl (one line per file)."),
    ] = TriageFormat.summary,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the outputs (default: <data_dir>/cases/<case>)."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=0, max=1024, help="Hashing processes (0: all cores).")
    ] = 0,
    ray: Annotated[
        str | None,
        typer.Option("--ray", help="Hash on the Ray cluster at ADDRESS (host:port, auto, local)."),
    ] = None,
) -> None:
    """Split a collection into known, ignorable, new and error, group the new material, and
    write the case's summary (HTML and JSON), CSV, VICS JSON and groups."""
    from meldpunt.config import get_settings
    from meldpunt.triage import (
        LocalHasher,
        RayHasher,
        TriageError,
        plan_from,
        rule_from,
        run_case,
        write_all,
        write_jsonl,
    )

    settings = get_settings()
    workers = jobs or os.cpu_count() or 1
    show = sys.stderr.isatty()
    from meldpunt.registry.matching import open_matcher

    with registry_session() as session:
        # the newest index snapshot (`meldpunt index snapshot`) brought up to date, else built
        matcher = open_matcher(session, Path(settings.data_dir) / "index")
    try:
        hasher = RayHasher(ray, workers if jobs else 0) if ray else LocalHasher(workers)
        with _progress_bar() if show else _Quiet() as bar:
            task = bar.add_task("hashing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = run_case(
                case, sources, plan=plan_from(settings), rule=rule_from(settings), hasher=hasher,
                batch_files=settings.triage_batch_files, progress=progress, matcher=matcher,
            )  # fmt: skip
    except TriageError as exc:
        fail(str(exc))
    folder = out or settings.data_dir / "cases" / case
    with registry_session() as session:
        written = write_all(session, case, folder)
        if output_format is TriageFormat.jsonl:
            from meldpunt.triage import get_case

            write_jsonl(session, get_case(session, case).id, sys.stdout)
    err = stderr()
    done_before = f", {report.skipped:,} recorded before" if report.skipped else ""
    err.print(
        f"case {case}: {report.hashed:,} files hashed{done_before} in {report.seconds:,.1f} s; "
        f"{report.groups:,} groups of new material; outputs in {written['page'].parent}",
        highlight=False,
    )
    if output_format is TriageFormat.summary:
        _print_summary(case)


class _Quiet:
    """A progress bar that shows nothing (not a terminal)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _print_summary(case: str) -> None:
    from meldpunt.triage import summary

    with registry_session() as session:
        figures = summary(session, case)
    shown = table(f"case {case}: {figures['files']:,} files")
    shown.add_column("class")
    shown.add_column("files", justify="right")
    for name, count in figures["classes"].items():
        shown.add_row(name, f"{count:,}")
    stdout().print(shown)
    if figures["known_by_category"]:
        known = table("known by category")
        known.add_column("category")
        known.add_column("files", justify="right")
        for name, count in figures["known_by_category"].items():
            known.add_row(name, f"{count:,}")
        stdout().print(known)


def _guard(action: Any) -> Any:
    from meldpunt.triage import TriageError

    try:
        return action()
    except TriageError as exc:
        fail(str(exc))


@case_app.command("list")
def list_command() -> None:
    """Cases with their state and size."""
    from meldpunt.triage import list_cases
    from meldpunt.triage.cases import class_counts

    shown = table("triage cases")
    for name in ("case", "state", "files", "known", "new", "created"):
        shown.add_column(name)
    with registry_session() as session:
        for row in list_cases(session):
            counts = class_counts(session, row.id)
            shown.add_row(row.name, row.state, f"{sum(counts.values()):,}",
                          f"{counts.get('known', 0):,}", f"{counts.get('new', 0):,}",
                          row.created_at.strftime("%Y-%m-%d %H:%M"))  # fmt: skip
    stdout().print(shown)


@case_app.command("report")
def report_command(
    case: Annotated[str, typer.Argument(help="The case's name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the outputs.")],
) -> None:
    """Write the case's outputs again (after decisions, say)."""
    from meldpunt.triage import write_all

    with registry_session() as session:
        written = _guard(lambda: write_all(session, case, out))
    for what, path in written.items():
        print(f"{what}: {path}")


@case_app.command("groups")
def groups_command(
    case: Annotated[str, typer.Argument(help="The case's name.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Largest groups shown.")] = 50,
) -> None:
    """The groups of new material, largest first: size, representative, decision."""
    from meldpunt.triage import get_case
    from meldpunt.triage.cases import groups_of

    with registry_session() as session:
        found = _guard(lambda: groups_of(session, get_case(session, case).id))
        shown = table(f"case {case}: {len(found):,} groups of new material")
        for name in ("group", "files", "distinct", "kind", "representative", "decision"):
            shown.add_column(name, overflow="fold")
        for g in sorted(found, key=lambda g: (-g.files, g.number))[:limit]:
            decision = f"{g.decision} {g.category or ''}".strip() if g.decision else ""
            shown.add_row(str(g.number), str(g.files), str(g.distinct_files), g.kind,
                          g.representative, decision)  # fmt: skip
    stdout().print(shown)


@case_app.command("decide")
def decide_command(
    case: Annotated[str, typer.Argument(help="The case's name.")],
    groups: Annotated[list[int], typer.Argument(help="Group numbers.")],
    illegal: Annotated[
        str | None, typer.Option("--illegal", help="Illegal, in this category (csam_baseline...).")
    ] = None,
    not_illegal: Annotated[bool, typer.Option("--not-illegal", help="Not illegal.")] = False,
) -> None:
    """Record a reviewer's decision on groups."""
    from meldpunt.triage import decide

    if bool(illegal) == not_illegal:
        fail("give either --illegal CATEGORY or --not-illegal", 2)
    decision = "illegal" if illegal else "not_illegal"
    with registry_session() as session:
        for number in groups:
            _guard(lambda n=number: decide(session, case, n, decision, category=illegal,
                                           actor="cli"))  # fmt: skip
    print(f"{len(groups)} group(s) decided {decision}")


@case_app.command("export")
def export_command(
    case: Annotated[str, typer.Argument(help="The case's name.")],
    hash_set: Annotated[str, typer.Option("--set", help="The registry set to add them to.")],
    not_illegal: Annotated[
        bool, typer.Option("--not-illegal", help="Export groups decided not illegal (allow-list).")
    ] = False,
) -> None:
    """Add the decided groups' files to a registry set, so they are known next time."""
    from meldpunt.triage import export

    decision = "not_illegal" if not_illegal else "illegal"
    with registry_session() as session:
        result = _guard(lambda: export(session, case, hash_set, decision, actor="cli"))
    outcomes = ", ".join(f"{v} {k}" for k, v in sorted(result.outcomes.items())) or "nothing"
    print(f"{result.groups} group(s), {result.items} item(s) into {hash_set}: {outcomes}")

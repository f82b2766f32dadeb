"""``meldpunt sets ...``: the hash sets of the registry, from the command line (thin).

    meldpunt sets create police-nl --kind blocklist --source-org "Politie" --category baseline
    meldpunt sets import police-nl export.json            # format recognised from the content
    meldpunt sets show police-nl
    meldpunt sets export police-nl - --format jsonl
    meldpunt sets withdraw police-nl 4711 --reason "wrongly classified by the source"
    meldpunt sets add hotline-nl photo.jpg folder/ --category A1   # entries from pictures
    meldpunt sets ways police-nl --off verified                    # how the set may match

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
from rich.markup import escape
from rich.table import Table

from meldpunt import registry
from meldpunt.cli.common import fail as _fail
from meldpunt.cli.common import group, hash_options, is_narrow, iter_files, registry_session
from meldpunt.cli.common import stderr as _stderr
from meldpunt.cli.common import stdout as _stdout
from meldpunt.cli.common import table as _table
from meldpunt.registry import (
    HashSetInfo,
    ImportProgress,
    ImportSummary,
    ItemStatus,
    SetKind,
    SetSummary,
)

__all__ = ["sets_app"]

sets_app = group(
    "Hash sets: the registry of known material (create, import, export, show, withdraw)."
)


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class ImportFormat(StrEnum):
    auto = "auto"
    vics = "vics"
    icse = "icse"
    te_csv = "te-csv"
    plain = "plain"
    jsonl = "jsonl"


class ExportFormat(StrEnum):
    vics = "vics"
    jsonl = "jsonl"
    te_csv = "te-csv"
    plain = "plain"
    icse = "icse"


class VicProfile(StrEnum):
    vics = "vics"
    us = "us"


def _set_record(info: HashSetInfo, summary: SetSummary | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": info.id,
        "name": info.name,
        "kind": info.kind,
        "state": info.state,
        "description": info.description,
        "source_org": info.source_org,
        "default_category": info.default_category,
        "pdq_threshold": info.pdq_threshold,
        "ways_off": sorted(info.ways_off),
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }
    if summary is not None:
        record["items"] = summary.items
        record["items_by_status"] = summary.items_by_status
        record["active_by_category"] = summary.active_by_category
        record["active_signals_by_type"] = summary.active_signals_by_type
    return record


@sets_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. police-nl.")],
    kind: Annotated[
        SetKind, typer.Option("--kind", help="blocklist or allowlist.")
    ] = SetKind.blocklist,
    description: Annotated[str, typer.Option("--description", help="What the set holds.")] = "",
    source_org: Annotated[
        str | None, typer.Option("--source-org", help="The organisation the list comes from.")
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category", help="Default category for items without one (baseline, A1, ncii...)."
        ),
    ] = None,
    threshold: Annotated[
        int, typer.Option("--threshold", min=0, max=64, help="PDQ distance threshold (0-64).")
    ] = 31,
) -> None:
    """Create a hash set."""
    with registry_session() as session:
        info = registry.create_set(
            session,
            name,
            kind=kind.value,
            description=description,
            source_org=source_org,
            default_category=category,
            pdq_threshold=threshold,
            actor="cli",
        )
    shown = info.default_category or "none"
    print(f"created {info.kind} {info.name!r}", end=" ")
    print(f"(default category {shown}, PDQ threshold {info.pdq_threshold})")


@sets_app.command("list")
def list_command(
    output_format: Annotated[
        ListFormat, typer.Option("--format", "-f", help="table or json.")
    ] = ListFormat.table,
) -> None:
    """List the hash sets with their item counts."""
    with registry_session() as session:
        summaries = registry.set_summaries(session)
    if output_format is ListFormat.json:
        print(json.dumps([_set_record(s.set, s) for s in summaries], indent=2))
        return
    console = _stdout()
    # A narrow terminal leaves out the columns that `sets show` has too.
    narrow = is_narrow(console)
    caption = "all items and the source: meldpunt sets show NAME" if narrow else None
    table = _table("hash sets", caption)
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("active", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("items", justify="right", no_wrap=True)
    table.add_column("category", overflow="fold")
    table.add_column("PDQ", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("source")
    for s in summaries:
        info = s.set
        items = [] if narrow else [str(s.items)]
        source = [] if narrow else [info.source_org or ""]
        table.add_row(
            escape(info.name),
            info.kind,
            info.state,
            str(s.active_items),
            *items,
            escape(info.default_category or ""),
            str(info.pdq_threshold),
            *map(escape, source),
        )
    console.print(table)


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = _table(title)
    table.add_column(title.split(" by ")[-1], overflow="fold")
    table.add_column("count", justify="right")
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(escape(key), str(count))
    return table


@sets_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="The set's name.")],
    output_format: Annotated[
        ListFormat, typer.Option("--format", "-f", help="table or json.")
    ] = ListFormat.table,
) -> None:
    """Show a set: its settings and its counts by status, category and signal type."""
    with registry_session() as session:
        summary = registry.set_summary(session, name)
    record = _set_record(summary.set, summary)
    if output_format is ListFormat.json:
        print(json.dumps(record, indent=2))
        return
    console = _stdout()
    info = summary.set
    console.print(f"[bold]{escape(info.name)}[/bold]  {info.kind}, {info.state}", highlight=False)
    settings = {
        "description": info.description,
        "source": info.source_org,
        "default category": info.default_category,
        "PDQ threshold": info.pdq_threshold,
        "ways turned off": ", ".join(sorted(info.ways_off)),
    }
    for label, value in settings.items():
        if value not in (None, ""):
            console.print(f"  {label}: {escape(str(value))}", highlight=False)
    console.print(_counts_table("items by status", summary.items_by_status))
    console.print(_counts_table("active items by category", summary.active_by_category))
    console.print(_counts_table("active signals by type", summary.active_signals_by_type))


@contextmanager
def _progress_bar(total: int, show: bool) -> Iterator[Callable[[ImportProgress], None] | None]:
    if not show:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        "{task.fields[records]} records",
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
    ) as progress:
        task = progress.add_task("importing", total=total or None, records=0)

        def update(state: ImportProgress) -> None:
            progress.update(task, completed=state.bytes_read, records=state.records)

        yield update


def _print_summary(summary: ImportSummary) -> None:
    console = _stdout()
    table = _table(f"import into {escape(summary.set_name)} ({summary.format})")
    for column in ("records", "added", "updated", "unchanged", "rejected"):
        table.add_column(column, justify="right")
    columns = ("records", "added", "updated", "unchanged", "rejected")
    table.add_row(*(str(getattr(summary, column)) for column in columns))
    console.print(table)
    label = "record" if summary.format == "vics" else "line"
    for problem in summary.problems:
        console.print(f"  {label} {problem.number}: {escape(problem.reason)}", highlight=False)
    if summary.rejected > len(summary.problems):
        console.print(f"  ... and {summary.rejected - len(summary.problems)} more rejected")
    for (scheme, raw), count in summary.unknown_categories.most_common(20):
        console.print(
            f"  unknown category {escape(repr(raw))} ({scheme or 'no scheme'}): {count} records, "
            "kept as raw with the code 'unknown'",
            highlight=False,
        )
    if summary.aborted:
        console.print(f"[yellow]stopped early:[/yellow] {escape(summary.aborted)}", highlight=False)


@sets_app.command("import")
def import_command(
    name: Annotated[str, typer.Argument(help="The set to import into.")],
    file: Annotated[Path, typer.Argument(help="The file to import.")],
    input_format: Annotated[
        ImportFormat, typer.Option("--format", "-f", help="The file's format (default: detected).")
    ] = ImportFormat.auto,
    vic_profile: Annotated[
        VicProfile,
        typer.Option("--vic-profile", help="Project VIC category 0: vics (none yet) or us."),
    ] = VicProfile.vics,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Records per transaction.")
    ] = 5000,
) -> None:
    """Import a hash list (VICS JSON, ICSE CSV, ThreatExchange CSV, plain list, JSON Lines).

    Malformed records are listed with their line (or record) number and skipped; the exit code
    is 0 unless the file could not be read at all."""
    try:
        stream = file.open("rb")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    with (
        stream,
        registry_session() as session,
        _progress_bar(file.stat().st_size, sys.stderr.isatty()) as progress,
    ):
        summary = registry.import_stream(
            session,
            name,
            stream,
            format=input_format.value,
            vic_profile=vic_profile.value,
            batch_size=batch_size,
            progress=progress,
            actor="cli",
            source=file.name,
        )
    _print_summary(summary)


@sets_app.command("export")
def export_command(
    name: Annotated[str, typer.Argument(help="The set to export.")],
    file: Annotated[str, typer.Argument(help="The file to write, or - for standard output.")],
    output_format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")],
    include_inactive: Annotated[
        bool | None,
        typer.Option(
            "--all/--active-only",
            help="Also disabled and withdrawn items (default: jsonl all, other formats active).",
        ),
    ] = None,
    vic_profile: Annotated[
        VicProfile, typer.Option("--vic-profile", help="VIC numbering for vics output.")
    ] = VicProfile.vics,
) -> None:
    """Export a set (JSON Lines is lossless; the other formats are lists for matching)."""
    statuses: tuple[str, ...] | None = None
    if include_inactive is not None:
        statuses = tuple(ItemStatus) if include_inactive else (ItemStatus.active,)
    options: dict[str, Any] = {"statuses": statuses, "vic_profile": vic_profile.value}
    with registry_session() as session:
        if file == "-":
            count = registry.export_set(session, name, sys.stdout, output_format.value, **options)
        else:
            try:
                with Path(file).open("w", encoding="utf-8", newline="") as out:
                    count = registry.export_set(session, name, out, output_format.value, **options)
            except OSError as exc:
                _fail(f"cannot write {file}: {exc.strerror or exc}")
    _stderr().print(f"{count} items written ({output_format.value})", highlight=False)


@sets_app.command("disable")
def disable_command(name: Annotated[str, typer.Argument(help="The set's name.")]) -> None:
    """Disable a set: it stops counting for matches; its items are kept."""
    with registry_session() as session:
        info = registry.disable_set(session, name, actor="cli")
    print(f"{info.name}: {info.state}")


@sets_app.command("enable")
def enable_command(name: Annotated[str, typer.Argument(help="The set's name.")]) -> None:
    """Enable a disabled set again."""
    with registry_session() as session:
        info = registry.enable_set(session, name, actor="cli")
    print(f"{info.name}: {info.state}")


@sets_app.command("update")
def update_command(
    name: Annotated[str, typer.Argument(help="The set's name.")],
    reviewed: Annotated[
        bool | None,
        typer.Option(
            "--reviewed/--not-reviewed",
            help="Whether the hotline assessed its entries (matches say so).",
        ),
    ] = None,
    default_category: Annotated[
        str | None, typer.Option("--default-category", help="For entries given without one.")
    ] = None,
) -> None:
    """Change a set's reviewed flag or default category (partners following it take both)."""
    with registry_session() as session:
        info = registry.update_set(
            session, name, reviewed=reviewed, default_category=default_category, actor="cli"
        )
    reviewed_word = "reviewed" if info.reviewed else "not reviewed"
    print(f"{info.name}: {reviewed_word}, default category {info.default_category or '-'}")


@sets_app.command("withdraw")
def withdraw_command(
    name: Annotated[str, typer.Argument(help="The set the entry belongs to.")],
    entry: Annotated[int, typer.Argument(min=1, help="The entry's id.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is taken back (kept in the audit log).")
    ],
) -> None:
    """Withdraw one entry: it stops matching everywhere and stays on record."""
    with registry_session() as session:
        info = registry.withdraw_item(session, entry, reason=reason, hash_set=name, actor="cli")
    print(f"{name}: entry {info.id} {info.status}")


@sets_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="The set to add to.")],
    pictures: Annotated[list[Path], typer.Argument(help="Pictures and folders of them.")],
    category: Annotated[
        str | None, typer.Option("--category", help="Their category (default: the set's).")
    ] = None,
    output_format: Annotated[
        ListFormat, typer.Option("--format", "-f", help="table or json")
    ] = ListFormat.table,
) -> None:
    """Add entries from pictures, with every signal meldpunt derives from pixels (digests, PDQ
    and its orientations, the trimmed hash, local features); the pictures are not kept."""
    from rich.progress import track

    from meldpunt.registry.pictures import add_pictures
    from meldpunt.signals import FileTooLarge, SignalError, UnreadableFile

    missing = [str(p) for p in pictures if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}", 2)
    files = list(iter_files(pictures))
    options = hash_options(exact=False, dihedral=True, exif=True)
    limit = options.limits.max_bytes

    def read(path: Path) -> bytes | SignalError:
        try:
            if path.stat().st_size > limit:
                return FileTooLarge(f"{path}: larger than {limit:,} bytes")
            return path.read_bytes()
        except OSError as exc:
            return UnreadableFile(f"cannot read {path}: {exc.strerror or exc}")

    shown = track(files, description="adding", console=_stderr(), transient=True,
                  disable=not sys.stderr.isatty())  # fmt: skip
    with registry_session() as session:  # entries committed a batch at a time
        outcomes = add_pictures(session, name, ((str(p), read(p)) for p in shown), options,
                                category=category, actor="cli", batch_size=64)  # fmt: skip
    if output_format is ListFormat.json:
        print(json.dumps([o.__dict__ for o in outcomes], indent=2))
    else:
        shown_table = _table(f"{escape(name)}: pictures added")
        for column in ("picture", "outcome", "entry", "signals or problem"):
            shown_table.add_column(column)
        for o in outcomes:
            detail = str(o.signals) if o.problem is None else o.problem
            shown_table.add_row(escape(o.name), o.outcome, str(o.item_id or "—"), escape(detail))
        _stdout().print(shown_table)
    rejected = sum(o.outcome == "rejected" for o in outcomes)
    _stderr().print(f"{len(outcomes) - rejected} added or updated, {rejected} refused",
                    highlight=False)  # fmt: skip
    if rejected and rejected == len(outcomes):
        raise typer.Exit(1)


@sets_app.command("ways")
def ways_command(
    name: Annotated[str, typer.Argument(help="The set.")],
    off: Annotated[
        list[registry.MatchWay] | None, typer.Option("--off", help="Turn this way off.")
    ] = None,
    on: Annotated[list[registry.MatchWay] | None, typer.Option("--on", help="Turn it on.")] = None,
) -> None:
    """Show or change the ways a set matches: plain always; orientation, trimmed and verified
    unless turned off."""
    with registry_session() as session:
        info = registry.set_ways(session, name, off=off or [], on=on or [], actor="cli")
    for way in registry.MatchWay:
        print(f"{way.value}: {'off' if way.value in info.ways_off else 'on'}")

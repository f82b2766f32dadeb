"""`meldpunt match` and `meldpunt index`: files or hash values against the local registry."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meldpunt.cli.common import (
    group,
    hash_many,
    hash_options,
    is_narrow,
    iter_files,
    registry_session,
    stdout,
    table,
    with_progress,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from meldpunt.registry.matching import MatchAnswer, Matcher

index_app = group("The in-memory index of the registry and its snapshots.")


def snapshot_dir() -> Path:
    from meldpunt.config import get_settings

    return Path(get_settings().data_dir) / "index"


def open_matcher(session: Session) -> Matcher:
    """The newest snapshot brought up to date, or an index built from the registry."""
    from meldpunt.registry.matching import open_matcher as open_in

    return open_in(session, snapshot_dir())


def _record(
    key: str, name: str, answer: MatchAnswer | None, error: str | None
) -> dict[str, object]:
    record: dict[str, object] = {key: name}
    if answer is not None:
        record.update(answer.as_dict())
    else:
        record.update(known=False, matches=[])
    if error:
        record["error"] = error
    return record


def _print_table(records: list[dict[str, object]], key: str) -> None:
    console = stdout()
    # A narrow terminal gets the first match in one column that wraps: set, category, signal
    # type and distance.
    narrow = is_narrow(console)
    shown = table()
    shown.add_column(key, overflow="fold")
    shown.add_column("known", no_wrap=True)
    columns = ("match",) if narrow else ("set", "category", "signal", "distance")
    for column in columns:
        shown.add_column(column, justify="right" if column == "distance" else "left")
    shown.add_column("note")
    for record in records:
        matches = record.get("matches") or []
        assert isinstance(matches, list)
        extra = record.get("notes")
        notes = [str(record["error"])] if record.get("error") else []
        notes += [str(n) for n in extra] if isinstance(extra, list) else []
        if record.get("suppressed"):
            notes.append("allow-listed: matches suppressed")
        if len(matches) > 1:
            notes.append(f"{len(matches) - 1} more matches")
        first = matches[0] if matches else {}
        found = [
            str(first.get(name, "")) for name in ("set", "category", "signal_type", "distance")
        ]
        if narrow:
            found = [f"{found[0]}, {found[1]}, {found[2]} at {found[3]}" if first else ""]
        shown.add_row(
            str(record[key]),
            "[red]known[/red]" if record["known"] else "unknown",
            *found,
            "; ".join(notes),
        )
    console.print(shown)


def _signal_queries(signals: list[str], signals_file: Path | None) -> Iterator[tuple[str, object]]:
    """(label, Query or error message) for --signal values and the lines of --signals-file."""
    from meldpunt.registry.matching import Query
    from meldpunt.signals import InvalidSignal
    from meldpunt.signals import types as signal_types

    def parse(text: str) -> object:
        try:
            return Query.from_pairs([signal_types.parse(text)])
        except InvalidSignal as exc:
            return str(exc)

    for text in signals:
        yield text, parse(text)
    if signals_file is not None:
        with open(signals_file, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                parsed = parse(text)
                if isinstance(parsed, str):
                    print(f"{signals_file}:{number}: {parsed}", file=sys.stderr)
                yield text, parsed


def match_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files and folders to match.")] = None,
    signal: Annotated[
        list[str] | None, typer.Option("--signal", help="A hash: TYPE:VALUE.")
    ] = None,
    signals_file: Annotated[Path | None, typer.Option(help="One 'TYPE VALUE' per line.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", "-f", help="table or jsonl")
    ] = None,  # fmt: skip
    categories: Annotated[
        str | None, typer.Option(help="Only these categories, e.g. baseline.")
    ] = None,
    dihedral: Annotated[
        bool,
        typer.Option("--dihedral/--no-dihedral", help="Also match rotated and mirrored copies."),
    ] = True,  # fmt: skip
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=0, help="Hashing processes.")] = 0,
) -> None:
    """Match files (hashed here) or hash values against the local registry."""
    import os

    from meldpunt.config import get_settings
    from meldpunt.registry import InvalidInput, category_filter
    from meldpunt.registry.matching import Query

    if not paths and not signal and signals_file is None:
        raise typer.BadParameter("give files, --signal or --signals-file")
    if output_format not in (None, "table", "jsonl"):
        raise typer.BadParameter("--format is table or jsonl")
    fmt = output_format or ("table" if sys.stdout.isatty() else "jsonl")
    try:
        wanted = category_filter(categories) if categories else None
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from exc
    missing = [str(p) for p in paths or [] if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        raise typer.Exit(2)
    min_quality = get_settings().pdq_min_quality
    records: list[dict[str, object]] = []

    def emit(record: dict[str, object]) -> None:
        if fmt == "jsonl":
            print(json.dumps(record), flush=True)
        else:
            records.append(record)

    with registry_session() as session:
        matcher = open_matcher(session)
        for label, query in _signal_queries(list(signal or []), signals_file):
            if isinstance(query, Query):
                query = replace(query, estimate=None if dihedral else False)
                answer = matcher.match(query, categories=wanted, min_quality=min_quality)
                emit(_record("signal", label, answer, None))
            else:
                emit(_record("signal", label, None, str(query)))
        files = list(iter_files(paths or []))
        from meldpunt.signals.hashing import QUERY

        features = QUERY if get_settings().match_features else 0
        options = hash_options(exact=False, dihedral=dihedral, exif=True, features=features)
        results = hash_many(files, options, jobs or os.cpu_count() or 1)
        for result in with_progress(results, len(files), sys.stderr.isatty()):
            query = Query.of_signals(result.digests, result.pdq)
            query = replace(query, estimate=None if dihedral else False)
            answer = matcher.match(query, categories=wanted, min_quality=min_quality)
            emit(_record("path", result.path, answer, result.error))
    if fmt == "table" and records:
        _print_table(records, "path" if "path" in records[-1] else "signal")


@index_app.command("snapshot")
def snapshot_command() -> None:
    """Write a snapshot of the index (later runs load it and apply only newer changes)."""
    from meldpunt.registry.matching import write_snapshot

    with registry_session() as session:
        path, matcher = write_snapshot(session, snapshot_dir())
    print(f"wrote {path} (change {matcher.seq}, {len(matcher.pdq):,} PDQ hashes)")


@index_app.command("status")
def status_command() -> None:
    """How far the newest snapshot is behind the registry."""
    from meldpunt.registry import current_seq
    from meldpunt.registry.matching import SNAPSHOT_PREFIX, newest_snapshot

    with registry_session() as session:
        newest = current_seq(session)
    snapshot = newest_snapshot(snapshot_dir())
    taken = int(snapshot.stem.removeprefix(SNAPSHOT_PREFIX)) if snapshot else None
    report = {"registry_change": newest, "snapshot": str(snapshot) if snapshot else None,
              "snapshot_change": taken}  # fmt: skip
    print(json.dumps(report))

"""The `meldpunt` command: assembles the command groups and holds `meldpunt hash` (thin: it
parses, calls the domain, and prints)."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from meldpunt import __version__
from meldpunt.cli import (
    audit,
    authority,
    checks,
    dsa,
    exchange,
    match,
    monitor,
    registry,
    reports,
    service,
    sim,
    takedown,
    triage,
)
from meldpunt.cli.common import (
    group,
    hash_many,
    hash_options,
    iter_files,
    print_hashes,
    stderr,
    with_progress,
)

if TYPE_CHECKING:
    from meldpunt.signals import FileSignals

app = group("meldpunt: open infrastructure against known illegal imagery online.")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"


CSV_FIELDS = ["path", "md5", "sha1", "sha256", "pdq", "pdq_quality", "pdq_dihedral", "error"]


def _write_csv(results: Iterable[FileSignals], out: TextIO, dihedral: bool) -> None:
    fields = CSV_FIELDS if dihedral else [f for f in CSV_FIELDS if f != "pdq_dihedral"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        record = result.as_record(dihedral=dihedral)
        if dihedral and isinstance(record.get("pdq_dihedral"), list):
            record["pdq_dihedral"] = ";".join(record["pdq_dihedral"])  # type: ignore[arg-type]
        writer.writerow(record)


def _write_jsonl(results: Iterable[FileSignals], out: TextIO, dihedral: bool) -> None:
    for result in results:
        out.write(json.dumps(result.as_record(dihedral=dihedral)) + "\n")
        out.flush()


@app.command("hash")
def hash_command(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (hashed recursively).")],
    output_format: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", help="table, csv or jsonl (default: table on a terminal)."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=0, help="Parallel processes (0: all cores).")
    ] = 0,
    dihedral: Annotated[
        bool, typer.Option("--dihedral", help="Add the 8 orientation hashes (pdq_dihedral).")
    ] = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="Full-resolution PDQ, bit for bit the reference.")
    ] = False,
    exif: Annotated[
        bool, typer.Option("--exif/--no-exif", help="Apply EXIF orientation before hashing.")
    ] = True,
) -> None:
    """Hash files: MD5, SHA-1, SHA-256 and PDQ (with its quality)."""
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        stderr().print(f"[red]error:[/red] no such file or folder: {', '.join(missing)}")
        raise typer.Exit(2)
    files = list(iter_files(paths))
    if output_format is None:
        output_format = OutputFormat.table if sys.stdout.isatty() else OutputFormat.jsonl
    options = hash_options(exact=exact, dihedral=dihedral, exif=exif)
    workers = jobs or os.cpu_count() or 1
    results = with_progress(hash_many(files, options, workers), len(files), sys.stderr.isatty())
    failures = 0

    def counted(items: Iterator[FileSignals]) -> Iterator[FileSignals]:
        nonlocal failures
        for item in items:
            failures += item.error is not None
            yield item

    if output_format is OutputFormat.jsonl:
        _write_jsonl(counted(results), sys.stdout, dihedral)
    elif output_format is OutputFormat.csv:
        _write_csv(counted(results), sys.stdout, dihedral)
    else:
        print_hashes(list(counted(results)))
    if sys.stderr.isatty() or failures:
        stderr().print(f"{len(files)} files hashed, {failures} with an error")


app.command("demo")(service.demo_command)
app.command("serve")(service.serve_command)
app.command("worker")(service.worker_command)
app.command("match")(match.match_command)
app.add_typer(registry.sets_app, name="sets")
app.add_typer(checks.orgs_app, name="orgs")
app.add_typer(checks.keys_app, name="keys")
app.add_typer(checks.subscriptions_app, name="subscriptions")
app.add_typer(match.index_app, name="index")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(reports.reports_app, name="reports")
app.add_typer(takedown.attribution_app, name="attribution")
app.add_typer(takedown.contacts_app, name="contacts")
app.add_typer(takedown.forwards_app, name="forwards")
app.add_typer(sim.sim_app, name="sim")
app.add_typer(authority.authority_app, name="authority")
app.add_typer(authority.hosters_app, name="hosters")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(dsa.dsa_app, name="dsa")
app.add_typer(exchange.partners_app, name="partners")
app.add_typer(exchange.exchange_app, name="exchange")
app.command("triage")(triage.triage_command)
app.add_typer(triage.case_app, name="triage-case")


@app.command("version")
def version_command() -> None:
    """Print meldpunt's version."""
    print(__version__)


def main() -> None:
    app()

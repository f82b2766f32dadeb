"""The meldpunt command line (thin: it parses, calls the domain, and prints)."""

from __future__ import annotations

import os

# Hashing runs one image per process; let each process use one BLAS thread so that --jobs is
# what decides how many cores work (set before numpy is imported anywhere).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import csv  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from enum import StrEnum  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Annotated, TextIO  # noqa: E402

import typer  # noqa: E402

from meldpunt import __version__  # noqa: E402
from meldpunt.cli.output import stderr, stdout  # noqa: E402

if TYPE_CHECKING:
    from meldpunt.signals import FileSignals, HashOptions

app = typer.Typer(
    help="meldpunt: open infrastructure against known illegal imagery online.",
    no_args_is_help=True,
    add_completion=False,
)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and the files under folders named, in a stable (sorted) order.

    Symbolic links to folders are not followed (no loops); links to files are hashed.
    """
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield path


def _hash_options(*, exact: bool, dihedral: bool, exif: bool) -> HashOptions:
    from meldpunt.config import get_settings
    from meldpunt.signals import HashOptions, ImageLimits

    settings = get_settings()
    return HashOptions(
        exact=exact,
        dihedral=dihedral,
        exif_transpose=exif and settings.exif_transpose,
        min_quality=settings.pdq_min_quality,
        limits=ImageLimits(
            max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        ),
    )


def hash_many(files: list[Path], options: HashOptions, jobs: int) -> Iterator[FileSignals]:
    """Hash files in parallel, yielding results in input order."""
    from meldpunt.signals import hash_file

    work = partial(hash_file, options=options)
    if jobs <= 1 or len(files) <= 1:
        yield from map(work, files)
        return
    workers = min(jobs, len(files))
    chunk = max(1, min(16, len(files) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(work, files, chunksize=chunk)


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


def _write_table(
    results: Iterable[FileSignals], title: str | None = None, relative_to: Path | None = None
) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("path", style="cyan", overflow="fold")
    table.add_column("md5", style="dim", no_wrap=True)
    table.add_column("pdq", style="green", no_wrap=True)
    table.add_column("quality", style="magenta", justify="right")
    table.add_column("note", style="yellow", overflow="fold")
    for result in results:
        shown = Path(result.path)
        if relative_to is not None and shown.is_relative_to(relative_to):
            shown = shown.relative_to(relative_to)
        note = result.error or ""
        if result.pdq is not None and result.pdq.low_quality:
            note = "low quality: not matched"
        table.add_row(
            str(shown),
            result.digests.md5 if result.digests else "",
            result.pdq.hash if result.pdq else "",
            str(result.pdq.quality) if result.pdq else "",
            note,
        )
    # Hashes are only useful whole: give the table room when output is not a terminal.
    stdout().print(table)


def _with_progress(results: Iterator[FileSignals], total: int, show: bool) -> Iterator[FileSignals]:
    if not show:
        yield from results
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=True) as progress:
        task = progress.add_task("hashing", total=total)
        for result in results:
            progress.advance(task)
            yield result


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
    options = _hash_options(exact=exact, dihedral=dihedral, exif=exif)
    workers = jobs or os.cpu_count() or 1
    results = _with_progress(hash_many(files, options, workers), len(files), sys.stderr.isatty())
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
        _write_table(list(counted(results)))
    if sys.stderr.isatty() or failures:
        stderr().print(f"{len(files)} files hashed, {failures} with an error")


@app.command("demo")
def demo_command(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service.")] = True,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Load the benign demo set and a demo platform, print its key and a check, then serve."""
    from meldpunt.demo import load_demo

    samples = Path(__file__).parent.parent / "samples"
    files = sorted(samples.glob("*.jpg"))
    options = _hash_options(exact=False, dihedral=False, exif=True)
    results = list(hash_many(files, options, 1))
    _write_table(results, "meldpunt: bundled benign sample photos", samples)
    demo = load_demo(results)
    url = f"http://{host}:{port}"
    print(f"""
Demo set '{demo.set_name}' holds these {len(results)} photos (benign stand-ins for known material).
Demo platform '{demo.org_name}', API key (shown once, keep it):

    {demo.key}

Service: {url}   API docs: {url}/docs   health: {url}/healthz
Admin pages: {url}/ui/   sign in with the demo hotline's admin key (shown once):

    {demo.admin_key}

Check a hash (it matches the first photo above):

    curl -s -X POST {url}/v1/check -H 'Authorization: Bearer {demo.key}' \\
      -H 'Content-Type: application/json' \\
      -d '{{"items": [{{"signals": [{{"type": "pdq", "value": "{demo.example_pdq}"}}]}}]}}'

Check a file:  curl -s -X POST {url}/v1/check -H 'Authorization: Bearer {demo.key}' \\
                 -F file=@{files[0]}
""")
    if serve:
        serve_command(host=host, port=port, workers=1)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Processes (each holds the index).")] = 1,
) -> None:
    """Run the hash check service (API, docs at /docs, metrics at /metrics)."""
    import uvicorn

    from meldpunt.config import get_settings
    from meldpunt.store import init_db

    init_db()
    uvicorn.run(
        "meldpunt.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level.lower(),
    )


@app.command("worker")
def worker_command(
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="Seconds between rounds.")] = 5.0,
    once: Annotated[bool, typer.Option(help="Run what is due now, then stop.")] = False,
) -> None:
    """Run due work (re-checks of hits' public URLs) in this process, beside or instead of the
    worker thread of `meldpunt serve`."""
    import threading

    from meldpunt.reports.fetcher import FetchPolicy
    from meldpunt.store import get_engine, init_db, make_sessionmaker
    from meldpunt.worker import run_once, run_worker

    init_db()
    sessions = make_sessionmaker(get_engine())
    policy = FetchPolicy.from_settings()
    if once:
        print(f"ran {run_once(sessions, policy)} re-check(s)")
        return
    stop = threading.Event()
    try:
        run_worker(sessions, policy, poll_seconds=poll_seconds, stop_event=stop)
    except KeyboardInterrupt:
        stop.set()


def _register_subcommands() -> None:
    from meldpunt.cli.checks import keys_app, orgs_app, subscriptions_app
    from meldpunt.cli.match import index_app, match_command
    from meldpunt.cli.registry import sets_app

    app.add_typer(sets_app, name="sets")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(keys_app, name="keys")
    app.add_typer(subscriptions_app, name="subscriptions")
    app.command("match")(match_command)
    app.add_typer(index_app, name="index")


_register_subcommands()


@app.command("version")
def version_command() -> None:
    """Print meldpunt's version."""
    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

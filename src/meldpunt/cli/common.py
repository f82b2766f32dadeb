"""What the `meldpunt` commands share: consoles, tables, the one way to fail, the registry
session and hashing files. Every other module of the command line imports this one (and the
standalone `ports`) and no other sibling; `app` assembles them all, so there are no cycles."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from meldpunt.signals import FileSignals, HashOptions

# Wider than this a terminal shows every column of a table; narrower, tables drop or fold the
# columns that are long by nature (digests) and say where to find them.
WIDE = 120


def group(help: str) -> typer.Typer:
    """A command group (`meldpunt sets`, `meldpunt keys`, ...), set up like every other."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        # Typer's rich help panels print every flag as taking a `<bool>` value and squeeze
        # the help text into a narrow column; the plain help shows flags as flags and reads
        # well at 80 columns.
        rich_markup_mode=None,
    )


def stderr() -> Console:
    return Console(stderr=True)


def stdout() -> Console:
    # Hashes are only useful whole: give tables room when the output is not a terminal,
    # unless COLUMNS says how wide it is.
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return Console()
    return Console(width=200)


def table(title: str | None = None, caption: str | None = None) -> Table:
    """A table in the command line's compact style (a rule under the header, no frame), so
    that more of a narrow terminal goes to the values. Columns holding names and hashes are
    declared ``no_wrap`` and keep their values whole; free text wraps."""
    return Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        min_width=len(title or ""),
    )


def is_narrow(console: Console) -> bool:
    """Whether tables should leave out or fold their longest columns on ``console``."""
    return console.width < WIDE


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code``. The message is
    printed as it is: a name in it that looks like console markup (``[/x]``) stays text."""
    stderr().print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def registry_session() -> Iterator[Session]:
    """A session on the configured database (migrated first); registry errors end the command."""
    from meldpunt.registry import RegistryError
    from meldpunt.store import init_db, session_scope

    init_db()
    try:
        with session_scope() as session:
            yield session
    except RegistryError as exc:
        fail(str(exc))


# --- hashing files ------------------------------------------------------------------------------


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


def hash_options(*, exact: bool, dihedral: bool, exif: bool, features: int = 0) -> HashOptions:
    """Hashing options from the command's flags and the configured image limits (``features``:
    how many local features to keep, 0 for none)."""
    from meldpunt.config import get_settings
    from meldpunt.signals import HashOptions, ImageLimits

    settings = get_settings()
    return HashOptions(
        exact=exact,
        dihedral=dihedral,
        trim=settings.pdq_trim,
        features=features,
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


def with_progress(results: Iterator[FileSignals], total: int, show: bool) -> Iterator[FileSignals]:
    """The results, with a progress bar on stderr while they come when ``show``."""
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


def print_hashes(
    results: Iterable[FileSignals], title: str | None = None, relative_to: Path | None = None
) -> None:
    """Hashes of files as a table on standard output. A narrow terminal gets the PDQ hash in
    two halves and no MD5 (every digest is in ``--format jsonl`` or ``csv``)."""
    console = stdout()
    narrow = is_narrow(console)
    caption = "MD5 and SHA digests: --format jsonl or csv" if narrow else None
    shown = table(title, caption)
    shown.add_column("path", style="cyan", overflow="fold")
    if not narrow:
        shown.add_column("md5", style="dim", no_wrap=True)
    # 64 hex digits fold into two rows of 32 rather than push the path off a narrow screen.
    pdq_width = 32 if narrow else None
    shown.add_column("pdq", style="green", width=pdq_width, overflow="fold", no_wrap=not narrow)
    shown.add_column("quality", style="magenta", justify="right", no_wrap=True)
    shown.add_column("note", style="yellow", overflow="fold")
    for result in results:
        path = Path(result.path)
        if relative_to is not None and path.is_relative_to(relative_to):
            path = path.relative_to(relative_to)
        note = result.error or ""
        if result.pdq is not None and result.pdq.low_quality:
            note = "low quality: not matched"
        md5 = [result.digests.md5 if result.digests else ""] if not narrow else []
        shown.add_row(
            str(path),
            *md5,
            result.pdq.hash if result.pdq else "",
            str(result.pdq.quality) if result.pdq else "",
            note,
        )
    console.print(shown)

"""What every `meldpunt` command prints through: consoles and the one way to fail."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console


def stderr() -> Console:
    return Console(stderr=True)


def stdout() -> Console:
    # Hashes are only useful whole: give tables room when the output is not a terminal.
    return Console() if sys.stdout.isatty() else Console(width=200)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code``."""
    stderr().print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)

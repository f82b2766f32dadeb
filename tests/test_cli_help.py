"""Every `meldpunt` command's --help, as a user reads it on an 80-column terminal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from meldpunt.cli import app

runner = CliRunner()


def command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, typer.core.TyperGroup):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


COMMANDS = list(command_paths(typer.main.get_command(app)))


def test_the_walk_finds_the_nested_commands():
    assert {("hash",), ("sets", "import"), ("keys", "list"), ("index", "snapshot")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "meldpunt")
def test_help_shows_flags_as_flags_and_fits_80_columns(path: tuple[str, ...]):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    # A flag takes no value: `--dihedral`, not `--dihedral <bool>`.
    assert "<bool>" not in result.output
    assert "--help" in result.output
    too_long = [line for line in result.output.splitlines() if len(line) > 80]
    assert too_long == []


def test_flags_and_options_with_values_are_told_apart():
    out = runner.invoke(app, ["hash", "--help"], env={"COLUMNS": "80"}).output
    assert "--dihedral " in out and "--exif / --no-exif" in out
    assert "-j, --jobs <int range>" in out

"""How the command line's package hangs together: its command groups share `cli.common` and do
not import each other (no cycles), and `python -m meldpunt.cli` is the `meldpunt` command."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import meldpunt.cli

PACKAGE = Path(meldpunt.cli.__file__).parent
# Modules every command may use; `app` assembles the groups, `__init__` exports `app`.
SHARED = {"meldpunt.cli.common", "meldpunt.cli.ports"}
ASSEMBLERS = {"__init__.py", "__main__.py", "app.py"}


def cli_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "meldpunt.cli":
                found |= {f"meldpunt.cli.{alias.name}" for alias in node.names}
            elif node.module.startswith("meldpunt.cli."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("meldpunt.cli.")}
    return found


def test_command_groups_import_only_the_shared_modules():
    groups = [p for p in sorted(PACKAGE.glob("*.py")) if p.name not in ASSEMBLERS]
    assert {p.stem for p in groups} >= {"checks", "common", "match", "registry", "service"}
    for path in groups:
        assert cli_imports(path) <= SHARED, path.name
    assert cli_imports(PACKAGE / "common.py") == set()


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "meldpunt.cli", "version"], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip() == meldpunt.__version__

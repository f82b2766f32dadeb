"""The rules of ``docs/architecture.md``, checked on the source itself.

Every module under ``src/meldpunt`` is parsed (never imported) and its imports and names are
compared with three rules: only ``clock.py`` reads the time, no room imports a room above it, and
only the safe fetcher opens connections. A failure names the module and the line to change.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import meldpunt

SRC = Path(meldpunt.__file__).parent

# --- the rules, as data --------------------------------------------------------------------------

#: The rooms from the bottom up. A module may import its own room and any room on an earlier line,
#: never one on its own line or a later one. A new room has to be placed here before it can import
#: anything. ``app`` is where the two faces meet (``api/app.py`` and the ``api`` package that
#: exports it mount the pages too), so the pages may use the API's parts without a cycle.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("meldpunt",),  # the package itself: its version, nothing else
    ("errors",),  # the one error base class; imports nothing of meldpunt
    ("signals", "index"),  # the library: nothing of meldpunt but the error base class
    ("clock",),
    ("text",),  # what text meldpunt accepts
    ("config",),
    ("store",),
    ("audit",),
    ("registry",),
    ("reports",),
    ("checks",),
    ("audit_verify",),  # checks the registry's and the check service's rows against the chain
    ("takedown",),
    ("authority",),
    ("monitor",),
    ("triage",),
    ("exchange",),
    ("worker",),
    ("sim",),  # the simulated internet: hosters, their names and networks, a mail sink
    ("demo",),
    ("api",),
    ("web",),
    ("app",),
    ("cli",),
)

#: Modules that belong to another room than their folder says.
ROOM_OF_MODULE = {"meldpunt.api": "app", "meldpunt.api.app": "app"}

#: Names that read or wait on the system time, and where they may be used anyway (with why).
TIME_NAMES = frozenset(
    {
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
        "time.process_time",
        "time.sleep",
        "time.localtime",
        "time.gmtime",
        "time.ctime",
        "time.asctime",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
    }
)
PERF_COUNTER = frozenset({"time.perf_counter", "time.perf_counter_ns"})
TIME_ALLOWED: dict[str, tuple[frozenset[str], str]] = {
    "clock": (TIME_NAMES, "the only source of time"),
    "signals": (PERF_COUNTER, "pure: may not import clock; measures how long its own work takes"),
    "index": (PERF_COUNTER, "pure: may not import clock; times its two search loops to pick one"),
}

#: Modules that open network connections, and the one module allowed to use them.
NETWORK_MODULES = (
    "socket",
    "ssl",
    "http.client",
    "urllib.request",
    "urllib3",
    "httpx",
    "requests",
    "aiohttp",
    "websockets",
    "smtplib",
    "ftplib",
    "poplib",
    "imaplib",
    "telnetlib",
)
NETWORK_NAMES = frozenset({"asyncio.open_connection", "asyncio.open_unix_connection"})
NETWORK_ALLOWED = {
    "meldpunt.reports.fetcher": "the safe fetcher: checks every address it connects to",
    "meldpunt.reports.smtp": "sends mail, only to the relay the settings name",
    # Binds a socket and closes it, to say a port is taken before `make run` installs anything.
    "meldpunt.cli.ports": "connects nowhere: tells whether the service's port is free",
}


# --- reading the source --------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # meldpunt.api.auth
    path: str  # for messages: api/auth.py
    tree: ast.Module
    is_package: bool = False

    @property
    def room(self) -> str:
        return room_of(self.name)


def room_of(module: str) -> str:
    if module in ROOM_OF_MODULE:
        return ROOM_OF_MODULE[module]
    parts = module.split(".")
    if len(parts) == 1:
        return "meldpunt"
    first = parts[1]
    # cli.py with its cli_*.py helpers, or a cli/ package: one room either way.
    return "cli" if first == "cli" or first.startswith("cli_") else first


def all_modules() -> list[Module]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC.parent).with_suffix("")
        parts = list(relative.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found.append(Module(".".join(parts), str(path.relative_to(SRC)), tree, is_package))
    return found


def known_module(name: str) -> bool:
    base = SRC.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(module: Module) -> Iterator[tuple[str, int]]:
    """Every imported module or name as an absolute dotted name, with its line."""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def imported_modules(module: Module) -> Iterator[tuple[str, int]]:
    """Like ``imports`` but ``from x import name`` gives ``x`` unless ``name`` is a module."""
    for name, line in imports(module):
        if name.startswith("meldpunt.") and not known_module(name):
            name = name.rsplit(".", 1)[0]
        yield name, line


def names_used(module: Module) -> Iterator[tuple[str, int]]:
    """Every dotted name the module refers to, with import aliases resolved (``dt.now`` ...)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                yield f"{node.module}.{alias.name}", node.lineno
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute | ast.Name):
            dotted = _dotted(node)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head in aliases:
                yield aliases[head] + ("." + rest if rest else ""), node.lineno


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


# --- the checks ----------------------------------------------------------------------------------


def time_readers(module: Module) -> list[str]:
    allowed, _ = TIME_ALLOWED.get(module.room, (frozenset(), ""))
    found = {(line, name) for name, line in names_used(module) if name in TIME_NAMES - allowed}
    return [f"{module.path}:{line}: {name} (ask meldpunt.clock)" for line, name in sorted(found)]


def layer_of(room: str) -> int | None:
    return next((i for i, rooms in enumerate(LAYERS) if room in rooms), None)


def upward_imports(module: Module) -> list[str]:
    own = layer_of(module.room)
    if own is None:
        return [f"{module.path}: room {module.room!r} is not in LAYERS; place it there"]
    found = []
    for name, line in imported_modules(module):
        if name != "meldpunt" and not name.startswith("meldpunt."):
            continue
        target = room_of(name)
        if target == module.room:
            continue
        theirs = layer_of(target)
        if theirs is None or theirs >= own:
            found.append(f"{module.path}:{line}: {module.room} imports {name} ({target})")
    return found


def connections(module: Module) -> list[str]:
    if module.name in NETWORK_ALLOWED:
        return []
    found = []
    for name, line in imports(module):
        if any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES):
            found.append(f"{module.path}:{line}: imports {name} (only reports/fetcher.py may)")
    for name, line in names_used(module):
        if name in NETWORK_NAMES:
            found.append(f"{module.path}:{line}: uses {name} (only reports/fetcher.py may)")
    return found


MODULES = all_modules()


# --- the rules hold ------------------------------------------------------------------------------


def test_only_the_clock_reads_the_time():
    problems = [p for module in MODULES for p in time_readers(module)]
    assert problems == [], "\n".join(problems)


def test_no_room_imports_a_room_above_it():
    problems = [p for module in MODULES for p in upward_imports(module)]
    assert problems == [], "\n".join(problems)


def test_the_library_rooms_import_nothing_of_meldpunt_but_the_error_base():
    problems = [
        f"{module.path}:{line}: imports {name}"
        for module in MODULES
        if module.room in ("signals", "index")
        for name, line in imported_modules(module)
        if name.startswith("meldpunt") and room_of(name) not in (module.room, "errors")
    ]
    assert problems == [], "\n".join(problems)


def test_only_the_fetcher_opens_connections():
    problems = [p for module in MODULES for p in connections(module)]
    assert problems == [], "\n".join(problems)


def test_every_rule_names_modules_that_exist():
    names = {module.name for module in MODULES}
    assert set(NETWORK_ALLOWED) <= names
    assert set(ROOM_OF_MODULE) <= names
    assert {module.room for module in MODULES} <= {room for rooms in LAYERS for room in rooms}


# --- the checks catch what they should (on made-up modules) --------------------------------------


def made_up(name: str, source: str) -> Module:
    return Module(name, name.removeprefix("meldpunt.").replace(".", "/") + ".py", ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.monotonic()",
        "import time as t\n\ndef f():\n    return t.time()",
        "from time import sleep",
        "from datetime import datetime\nstamp = datetime.now()",
        "import datetime\nday = datetime.date.today()",
        "import time\nfield = dict(default_factory=time.time)",
    ],
)
def test_a_module_reading_the_time_is_named_with_its_line(source):
    problems = time_readers(made_up("meldpunt.web.sessions", source))
    last_line = len(source.splitlines())
    assert problems and all(p.startswith("web/sessions.py:") for p in problems)
    assert any(p.startswith(f"web/sessions.py:{last_line}:") for p in problems)


def test_measuring_is_tolerated_only_in_the_pure_rooms():
    source = "import time\nstarted = time.perf_counter()"
    assert time_readers(made_up("meldpunt.index.pdq", source)) == []
    assert time_readers(made_up("meldpunt.api.fastlane", source)) == [
        "api/fastlane.py:2: time.perf_counter (ask meldpunt.clock)"
    ]
    assert time_readers(made_up("meldpunt.index.pdq", "import time\ntime.sleep(1)")) != []
    assert time_readers(made_up("meldpunt.clock", "import time\ntime.sleep(1)")) == []


@pytest.mark.parametrize(
    ("name", "source", "offender"),
    [
        ("meldpunt.checks.hits", "from meldpunt.api import errors", "meldpunt.api.errors"),
        ("meldpunt.registry.sets", "import meldpunt.web.render", "meldpunt.web.render"),
        ("meldpunt.checks.orgs", "from meldpunt.cli import app", "meldpunt.cli.app"),
        ("meldpunt.checks.orgs", "from meldpunt.cli.common import fail", "meldpunt.cli.common"),
        ("meldpunt.signals.pdq", "from meldpunt import clock", "meldpunt.clock"),
        ("meldpunt.registry.items", "from meldpunt.checks import orgs", "meldpunt.checks.orgs"),
        ("meldpunt.api.auth", "from meldpunt.web import sessions", "meldpunt.web.sessions"),
    ],
)
def test_an_upward_import_is_named_with_its_line(name, source, offender):
    module = made_up(name, "from __future__ import annotations\n" + source)
    problems = upward_imports(module)
    assert len(problems) == 1 and f":2: {module.room} imports {offender} " in problems[0]


def test_downward_and_relative_imports_are_fine():
    module = made_up("meldpunt.api.auth", "from ..checks import Principal\nfrom .errors import X")
    assert upward_imports(module) == []
    module = made_up("meldpunt.web.pages", "from meldpunt import clock, registry")
    assert upward_imports(module) == []


@pytest.mark.parametrize(
    "source",
    [
        "import socket",
        "from http.client import HTTPConnection",
        "from http import client",
        "import urllib.request",
        "import asyncio\nasync def f():\n    await asyncio.open_connection('x', 1)",
    ],
)
def test_a_module_opening_connections_is_named(source):
    problems = connections(made_up("meldpunt.checks.rechecks", source))
    assert problems and problems[0].startswith("checks/rechecks.py:")
    assert connections(made_up("meldpunt.reports.fetcher", source)) == []


def test_parsing_urls_is_not_a_connection():
    source = "from urllib.parse import urlsplit\nfrom http import HTTPStatus"
    assert connections(made_up("meldpunt.web.render", source)) == []

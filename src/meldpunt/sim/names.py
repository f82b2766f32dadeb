"""The simulation's name table: a file in the shape of ``/etc/hosts`` that meldpunt's resolver
reads before DNS (``fetcher.NameTable``, setting ``resolver_hosts_file``).

It is written whole and atomically (a new file renamed over the old one) every time a name
moves or goes, so a reader never sees half a table. The resolver notices a change by the
file's modification time and size; a table rewritten within the file system's timestamp
granularity could keep both, so a new file's time is set past the old one's when needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_name_table"]


def write_name_table(path: Path, names: Mapping[str, str], *, comment: str = "") -> None:
    """Write ``names`` (host name -> address) to ``path`` as ``address name`` lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"{address} {name}" for name, address in sorted(names.items())]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        before = path.stat().st_mtime_ns
    except OSError:
        before = None
    if before is not None and temporary.stat().st_mtime_ns <= before:
        os.utime(temporary, ns=(before + 1_000_000, before + 1_000_000))
    os.replace(temporary, path)

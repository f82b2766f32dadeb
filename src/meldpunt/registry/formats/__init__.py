"""The exchange formats: one module per format, each with ``read``, ``write`` and ``sniff``.

``detect(head)`` names the format of a file from its first bytes; ``FORMATS`` maps the names the
command line uses (``vics``, ``icse``, ``te-csv``, ``plain``, ``jsonl``) to the modules.
"""

from __future__ import annotations

from types import ModuleType

from meldpunt.registry.formats import icse, jsonl, plain, te_csv, vics

__all__ = ["FORMATS", "SNIFF_BYTES", "detect"]

FORMATS: dict[str, ModuleType] = {
    module.NAME: module for module in (vics, icse, te_csv, plain, jsonl)
}

#: How much of a file ``detect`` looks at.
SNIFF_BYTES = 64 * 1024

# Most specific first: a JSON Lines file also starts with "{", a CSV line could pass as plain.
_ORDER = (jsonl, vics, icse, te_csv, plain)


def detect(head: bytes) -> str | None:
    """The name of the format ``head`` (a file's first bytes) is in, None when none fits."""
    if b"\x00" in head:
        return None
    for module in _ORDER:
        if module.sniff(head):
            return str(module.NAME)
    return None

"""Small database helpers shared by the check service's modules."""

from __future__ import annotations

from meldpunt.store import begin_write

__all__ = ["begin_write", "row_id"]


def row_id(text: str) -> int | None:
    """``text`` as a row id when it reads as one: ASCII digits within 64 bits. ``str.isdigit()``
    also says yes to ``'²'``, which ``int()`` refuses, and a longer number fits no database."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value < 2**63 else None

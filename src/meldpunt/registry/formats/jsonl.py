"""meldpunt's own JSON Lines: one item per line, lossless.

    {"id": 7, "reference": "4711", "status": "active", "category": "csam_baseline",
     "category_raw": "A1", "category_scheme": "industry", "note": null,
     "signals": [{"type": "md5", "value": "…"}, {"type": "pdq", "value": "…"}]}

(one line each). Export and import round-trip exactly: signals, category (code, raw value and
scheme), reference, status and note. ``id`` is informational (ids are local to a registry).
Written by hand, ``category`` may also be a raw value of any scheme ("A1"), and a signal may be
written as ``["md5", "…"]``.

The lines ``meldpunt hash --format jsonl`` writes are read too, one item per file:

    {"path": "photos/coffee.jpg", "md5": "…", "sha1": "…", "sha256": "…", "pdq": "…",
     "pdq_quality": 100}

Its digests and PDQ hash become the item's signals and its path the reference. A PDQ hash
marked ``pdq_low_quality`` is left out (too little detail to tell pictures apart: it would
match unrelated pictures), ``pdq_quality`` and ``pdq_dihedral`` are not stored (matching turns
the picture that is checked, not the list), and a file that could not be hashed (``error``) is
reported with its line number and skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TextIO

from meldpunt.registry.categories import CODES
from meldpunt.registry.records import (
    ExportItem,
    ImportRecord,
    ReadOptions,
    RecordProblem,
    text_lines,
)
from meldpunt.signals.errors import InvalidSignal
from meldpunt.signals.features import LocalFeatures

__all__ = ["NAME", "read", "sniff", "write"]

NAME = "jsonl"


#: Longer "features" text is refused (meldpunt keeps at most a few hundred features, 36 bytes each).
MAX_FEATURES_TEXT = 64 * 1024

#: The signals of a `meldpunt hash` line, in the order the item gets them.
HASH_SIGNALS = ("md5", "sha1", "sha256", "pdq")


def _is_hash_line(value: dict[str, Any]) -> bool:
    return "path" in value and any(key in value for key in (*HASH_SIGNALS, "error_code"))


def sniff(head: bytes) -> bool:
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]
    try:
        value = json.loads(first)
    except ValueError:
        return False
    return isinstance(value, dict) and ("signals" in value or _is_hash_line(value))


def _optional_text(line: dict[str, Any], name: str) -> str | None:
    value = line.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string")
    return str(value)


def _signals(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError("signals must be a non-empty list")
    pairs = []
    for signal in value:
        if isinstance(signal, dict):
            kind, text = signal.get("type"), signal.get("value")
        elif isinstance(signal, list) and len(signal) == 2:
            kind, text = signal
        else:
            raise ValueError('each signal is {"type": …, "value": …}')
        if not isinstance(kind, str) or not isinstance(text, str):
            raise ValueError("a signal's type and value are strings")
        pairs.append((kind, text))
    return pairs


def _hash_record(line: dict[str, Any], number: int) -> ImportRecord:
    """An item from a line of `meldpunt hash --format jsonl`."""
    path = _optional_text(line, "path")
    if line.get("error"):
        raise ValueError(f"{path}: not hashed: {line['error']}")
    signals = []
    for kind in HASH_SIGNALS:
        value = line.get(kind)
        if value is None or (kind == "pdq" and line.get("pdq_low_quality")):
            continue
        if not isinstance(value, str):
            raise ValueError(f"{kind} must be a string")
        signals.append((kind, value))
    if not signals:
        raise ValueError(f"{path}: no hash to import")
    attributes = {k: line[k] for k in ("pdq_quality", "pdq_dihedral") if line.get(k) is not None}
    return ImportRecord(number=number, signals=signals, reference=path, attributes=attributes)


def _record(line: Any, number: int) -> ImportRecord:
    if not isinstance(line, dict):
        raise ValueError("each line is a JSON object")
    if "signals" not in line and _is_hash_line(line):
        return _hash_record(line, number)
    if "signals" not in line:
        raise ValueError("missing field 'signals'")
    category = _optional_text(line, "category")
    raw = _optional_text(line, "category_raw")
    if category is not None and category not in CODES:
        # Written by hand: "category": "A1" is a raw value of some scheme, not a code.
        category, raw = None, raw if raw is not None else category
    return ImportRecord(
        number=number,
        signals=_signals(line["signals"]),
        category_code=category,
        category_raw=raw,
        category_scheme=_optional_text(line, "category_scheme"),
        reference=_optional_text(line, "reference"),
        note=_optional_text(line, "note"),
        status=_optional_text(line, "status"),
        features=_features(line),
    )


def _features(line: dict[str, Any]) -> bytes | None:
    """The local features a line carries (base64), checked: what its ``features`` signal names."""
    text = line.get("features")
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > MAX_FEATURES_TEXT:
        raise ValueError("features must be base64 text of meldpunt's local features")
    try:
        data = base64.b64decode(text, validate=True)
        LocalFeatures.from_bytes(data)
    except (binascii.Error, InvalidSignal) as exc:
        raise ValueError(f"features: {exc}") from None
    named = {value for kind, value in _signals(line["signals"]) if kind == "features"}
    if hashlib.sha256(data).hexdigest() not in named:
        raise ValueError("features do not match the digest of the line's features signal")
    return data


def read(stream: BinaryIO, options: ReadOptions) -> Iterator[ImportRecord | RecordProblem]:
    for number, text in enumerate(text_lines(stream), start=1):
        if not text.strip():
            continue
        try:
            yield _record(json.loads(text), number)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            yield RecordProblem(number, str(exc) if not isinstance(exc, json.JSONDecodeError)
                                else f"broken JSON: {exc.msg} (column {exc.colno})")  # fmt: skip


def line(item: ExportItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "reference": item.reference,
        "status": item.status,
        "category": item.category,
        "category_raw": item.category_raw,
        "category_scheme": item.category_scheme,
        "note": item.note,
        "signals": [{"type": kind, "value": value} for kind, value in item.signals],
        **({"features": base64.b64encode(item.features).decode()} if item.features else {}),
    }


def write(items: Iterable[ExportItem], out: TextIO) -> int:
    count = 0
    for item in items:
        out.write(json.dumps(line(item), ensure_ascii=False) + "\n")
        count += 1
    return count

"""Snapshot files: named numpy arrays plus a JSON header, memory-mapped when loaded.

Layout (version 2): the magic ``MELDPUNT-INDEX\\n``, an 8-byte little-endian header length, the
JSON header (format version, free-form ``meta``, and per array its dtype, shape, byte offset and
CRC-32), the CRC-32 of the header (4 bytes, little-endian), then each array at a 64-byte aligned
offset. Nothing is unpickled: dtypes come from an allow-list, shapes and offsets are checked
against the file size, and every byte of the header and the arrays against its checksum, so a
damaged or hostile file gives a clear ``SnapshotError`` instead of wrong answers or a crash.
(Indexes check the arrays' contents too: see ``PdqIndex.from_arrays``.) Files are written to a
temporary name and renamed, so a crash never leaves half a snapshot; a file that is changed in
place while a process has it memory-mapped is caught by the index's bounds checks, one that is
truncated then can still end that process (load with ``mmap=False`` to be immune).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAGIC = b"MELDPUNT-INDEX\n"
VERSION = 2
ALIGN = 64
ALLOWED_DTYPES = {
    "<u1",
    "<u2",
    "<u4",
    "<u8",
    "<i1",
    "<i2",
    "<i4",
    "<i8",
    "<f4",
    "<f8",
    "|u1",
    "|i1",
}
MAX_HEADER = 16 * 1024 * 1024
MAX_DIMENSIONS = 8


class SnapshotError(ValueError):
    """The file is not a readable meldpunt index snapshot (missing, damaged, or hostile)."""


def _checksum(array: NDArray[Any]) -> int:
    return zlib.crc32(np.ascontiguousarray(array).data) if array.size else 0


def _data_start(header_length: int) -> int:
    return -(-(len(MAGIC) + 8 + header_length + 4) // ALIGN) * ALIGN


def save(
    path: str | os.PathLike[str], arrays: dict[str, NDArray[Any]], meta: dict[str, Any]
) -> None:
    target = Path(path)
    entries: dict[str, dict[str, Any]] = {}
    offset = 0
    prepared: list[tuple[str, NDArray[Any]]] = []
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        dtype = (
            contiguous.dtype.newbyteorder("<")
            if contiguous.dtype.byteorder == ">"
            else contiguous.dtype
        )
        contiguous = contiguous.astype(dtype, copy=False)
        if contiguous.dtype.str not in ALLOWED_DTYPES:
            raise SnapshotError(f"array {name}: dtype {contiguous.dtype} cannot be stored")
        offset = -(-offset // ALIGN) * ALIGN
        entries[name] = {"dtype": contiguous.dtype.str, "shape": list(contiguous.shape),
                         "offset": offset, "crc32": _checksum(contiguous)}  # fmt: skip
        offset += contiguous.nbytes
        prepared.append((name, contiguous))
    header = json.dumps({"version": VERSION, "meta": meta, "arrays": entries}).encode()
    start = _data_start(len(header))
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(MAGIC + len(header).to_bytes(8, "little") + header)
        out.write(zlib.crc32(header).to_bytes(4, "little"))
        for name, array in prepared:
            out.seek(start + entries[name]["offset"])
            if array.size:
                out.write(memoryview(array).cast("B"))  # type: ignore[arg-type]
        out.truncate(start + offset)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


def _read_header(source: Path) -> tuple[dict[str, Any], int, int]:
    """The parsed header, where the arrays start, and the file size."""
    try:
        size = source.stat().st_size
        with open(source, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise SnapshotError(f"{source} is not a meldpunt index snapshot")
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= MAX_HEADER:
                raise SnapshotError(f"{source}: damaged header")
            raw = handle.read(length)
            checksum = handle.read(4)
    except OSError as exc:
        raise SnapshotError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{source}: damaged header") from exc
    if isinstance(header, dict) and header.get("version") == 1:
        raise SnapshotError(f"{source}: a version 1 snapshot (no checksums); take a new one")
    if len(checksum) != 4 or int.from_bytes(checksum, "little") != zlib.crc32(raw):
        raise SnapshotError(f"{source}: damaged header (checksum)")
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise SnapshotError(f"{source}: unsupported snapshot version")
    if not isinstance(header.get("arrays", {}), dict) or not isinstance(header.get("meta"), dict):
        raise SnapshotError(f"{source}: damaged header")
    return header, _data_start(length), size


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _entry(source: Path, name: str, entry: Any) -> tuple[np.dtype[Any], tuple[int, ...], int, int]:
    """dtype, shape, offset and checksum of one array, each checked."""
    fields: dict[str, Any] = entry if isinstance(entry, dict) else {}
    dtype_name, raw_shape = fields.get("dtype"), fields.get("shape")
    offset, crc = _count(fields.get("offset")), _count(fields.get("crc32"))
    dims = raw_shape if isinstance(raw_shape, list) and len(raw_shape) <= MAX_DIMENSIONS else [None]
    shape = tuple(n for n in map(_count, dims) if n is not None)
    dtype_ok = isinstance(dtype_name, str) and dtype_name in ALLOWED_DTYPES
    if not dtype_ok or offset is None or crc is None or len(shape) < len(dims):
        raise SnapshotError(f"{source}: damaged entry for the array {name}")
    return np.dtype(str(dtype_name)), shape, offset, crc


def load(
    path: str | os.PathLike[str], *, mmap: bool = True, verify: bool = True
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """The arrays (read-only memory maps, or copies with ``mmap=False``) and the meta dict.

    ``verify`` compares every array with its checksum (reading the whole file once; turn it off
    only for a file known to be good)."""
    source = Path(path)
    header, start, size = _read_header(source)
    arrays: dict[str, NDArray[Any]] = {}
    for name, entry in header.get("arrays", {}).items():
        dtype, shape, offset, crc = _entry(source, name, entry)
        nbytes = math.prod(shape) * dtype.itemsize
        if start + offset + nbytes > size:
            raise SnapshotError(f"{source}: array {name} runs past the end of the file")
        try:
            if nbytes == 0:
                array: NDArray[Any] = np.zeros(shape, dtype=dtype)
            elif mmap:
                array = np.memmap(source, dtype=dtype, mode="r", offset=start + offset, shape=shape)
            else:
                with open(source, "rb") as handle:
                    handle.seek(start + offset)
                    count = nbytes // dtype.itemsize
                    array = np.fromfile(handle, dtype=dtype, count=count).reshape(shape)
        except (OSError, ValueError) as exc:  # the file changed while it was read
            raise SnapshotError(f"cannot read the array {name} of {source}: {exc}") from exc
        if verify and _checksum(array) != crc:
            raise SnapshotError(f"{source}: the array {name} is damaged (checksum)")
        arrays[name] = array
    return arrays, header["meta"]

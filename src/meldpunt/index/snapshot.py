"""Snapshot files: named numpy arrays plus a JSON header, memory-mapped when loaded.

Layout: the magic ``MELDPUNT-INDEX\\n``, an 8-byte little-endian header length, the JSON header
(format version, free-form ``meta``, and per array its dtype, shape and byte offset), then each
array at a 64-byte aligned offset. Nothing is unpickled: dtypes come from an allow-list, shapes and
offsets are checked against the file size, so a damaged or hostile file gives a clear error.
Files are written to a temporary name and renamed, so a crash never leaves half a snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAGIC = b"MELDPUNT-INDEX\n"
VERSION = 1
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


class SnapshotError(ValueError):
    """The file is not a readable meldpunt index snapshot."""


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
                         "offset": offset}  # fmt: skip
        offset += contiguous.nbytes
        prepared.append((name, contiguous))
    header = json.dumps({"version": VERSION, "meta": meta, "arrays": entries}).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(MAGIC + len(header).to_bytes(8, "little") + header)
        for name, array in prepared:
            out.seek(start + entries[name]["offset"])
            out.write(memoryview(array).cast("B"))  # type: ignore[arg-type]
        out.truncate(start + offset)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)


def load(
    path: str | os.PathLike[str], *, mmap: bool = True
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """The arrays (read-only memory maps, or copies with ``mmap=False``) and the meta dict."""
    source = Path(path)
    try:
        size = source.stat().st_size
        with open(source, "rb") as handle:
            magic = handle.read(len(MAGIC))
            if magic != MAGIC:
                raise SnapshotError(f"{source} is not a meldpunt index snapshot")
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= MAX_HEADER:
                raise SnapshotError(f"{source}: damaged header")
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise SnapshotError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{source}: damaged header") from exc
    if not isinstance(header, dict) or header.get("version") != VERSION:
        raise SnapshotError(f"{source}: unsupported snapshot version")
    start = -(-(len(MAGIC) + 8 + length) // ALIGN) * ALIGN
    arrays: dict[str, NDArray[Any]] = {}
    for name, entry in dict(header.get("arrays", {})).items():
        try:
            dtype = np.dtype(str(entry["dtype"]))
            shape = tuple(int(n) for n in entry["shape"])
            offset = int(entry["offset"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{source}: damaged entry for {name}") from exc
        if dtype.str not in ALLOWED_DTYPES or any(n < 0 for n in shape) or offset < 0:
            raise SnapshotError(f"{source}: array {name} is not allowed")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if start + offset + nbytes > size:
            raise SnapshotError(f"{source}: array {name} runs past the end of the file")
        if nbytes == 0:
            arrays[name] = np.zeros(shape, dtype=dtype)
        elif mmap:
            arrays[name] = np.memmap(
                source, dtype=dtype, mode="r", offset=start + offset, shape=shape
            )
        else:
            with open(source, "rb") as handle:
                handle.seek(start + offset)
                arrays[name] = np.fromfile(
                    handle, dtype=dtype, count=nbytes // dtype.itemsize
                ).reshape(shape)
    meta = header.get("meta", {})
    return arrays, meta if isinstance(meta, dict) else {}

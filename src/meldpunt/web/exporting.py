"""Streaming a set's export as a download, in bounded memory.

``registry.export_set`` writes to a text stream; here it runs in a thread of its own and writes
64 KiB chunks into a small queue that the response reads from. A slow client slows the export
down instead of filling memory; a client that goes away stops it. If the export fails half-way
the connection is broken off, so that nobody mistakes a cut-off file for a whole one.
"""

from __future__ import annotations

import contextlib
import io
import queue
import re
import threading
from collections.abc import Iterator
from typing import Any, TextIO, cast

from sqlalchemy.orm import Session, sessionmaker

from meldpunt import registry

__all__ = ["CONTENT_TYPES", "EXTENSIONS", "download_name", "stream_export"]

CHUNK = 64 * 1024
EXTENSIONS = {"vics": "json", "jsonl": "jsonl", "te-csv": "csv", "plain": "txt", "icse": "csv"}
CONTENT_TYPES = {
    "vics": "application/json",
    "jsonl": "application/x-ndjson",
    "te-csv": "text/csv; charset=utf-8",
    "plain": "text/plain; charset=utf-8",
    "icse": "text/csv; charset=utf-8",
}
_END = object()


class _Cancelled(Exception):
    pass


class _ChunkWriter(io.TextIOBase):
    def __init__(self, put: Any) -> None:
        self._put = put
        self._parts: list[str] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= CHUNK:
            self.send()
        return len(text)

    def send(self) -> None:
        if self._parts:
            self._put("".join(self._parts).encode("utf-8"))
            self._parts, self._size = [], 0


def download_name(set_name: str, format: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", set_name).strip("._") or "set"
    return f"{stem}.{EXTENSIONS[format]}"


def stream_export(sessions: sessionmaker[Session], set_id: int, format: str) -> Iterator[bytes]:
    """The export of the set, chunk by chunk (a generator: the work starts on the first read)."""
    chunks: queue.Queue[object] = queue.Queue(maxsize=8)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(chunk: object) -> None:
        while not stop.is_set():
            try:
                chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def produce() -> None:
        try:
            with sessions() as session:
                writer = _ChunkWriter(put)
                registry.export_set(session, set_id, cast(TextIO, writer), format)
                writer.send()
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the reader, which breaks the download off
            failure.append(exc)
        with contextlib.suppress(_Cancelled):
            put(_END)

    thread = threading.Thread(target=produce, name="meldpunt-export", daemon=True)
    thread.start()
    try:
        while True:
            chunk = chunks.get()
            if chunk is _END:
                break
            assert isinstance(chunk, bytes)
            yield chunk
        if failure:
            raise RuntimeError(f"the export stopped half-way: {failure[0]}") from failure[0]
    finally:
        stop.set()

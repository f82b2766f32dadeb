"""Exact (cryptographic) hashes: MD5, SHA-1 and SHA-256 in one streamed pass."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Protocol

from .errors import UnreadableFile

CHUNK_BYTES = 1 << 20


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class ExactDigests:
    md5: str
    sha1: str
    sha256: str
    size: int


class Digester:
    """MD5, SHA-1 and SHA-256 of bytes fed in pieces (``update``), for callers that read the
    pieces themselves (members of an archive)."""

    def __init__(self) -> None:
        self._hashes = (hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False),
                        hashlib.sha256())  # fmt: skip
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        for h in self._hashes:
            h.update(chunk)
        self.size += len(chunk)

    def result(self) -> ExactDigests:
        md5, sha1, sha256 = (h.hexdigest() for h in self._hashes)
        return ExactDigests(md5, sha1, sha256, self.size)


def digest_bytes(data: bytes) -> ExactDigests:
    digester = Digester()
    digester.update(data)
    return digester.result()


def digest_stream(stream: Readable, chunk_bytes: int = CHUNK_BYTES) -> ExactDigests:
    """Hash a stream chunk by chunk: memory stays at one chunk whatever the size."""
    digester = Digester()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    while True:
        read = stream.readinto(view)
        if not read:
            break
        digester.update(view[:read])
    return digester.result()


def digest_file(path: str | os.PathLike[str]) -> ExactDigests:
    try:
        with open(path, "rb", buffering=0) as stream:
            return digest_stream(stream)
    except OSError as exc:
        raise UnreadableFile(f"cannot read {os.fspath(path)!s}: {exc.strerror or exc}") from exc

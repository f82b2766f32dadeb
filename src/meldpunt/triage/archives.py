"""Archives read as streams: zip, tar (plain, gzip, bzip2, xz) and 7z, nested, never unpacked
to disk.

A member is read piece by piece; its bytes are kept in memory only up to ``max_member_bytes``
(beyond that it is digested without being kept, and named too large). Every archive a source
holds, nested ones included, draws from one budget of expanded bytes (``max_expanded_bytes``)
and members (``max_members``), so a zip bomb stops with a named error after a bounded amount of
work; archives nested deeper than ``max_depth`` are named and not opened. Member names are
never used as file names: they only label the member, cleaned of path tricks (``..``, absolute
paths, backslashes, control characters).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from meldpunt.errors import MeldpuntError
from meldpunt.signals import Digester, ExactDigests

CHUNK = 1 << 20
SNIFF_BYTES = 512


class ArchiveProblem(MeldpuntError):
    """An archive (or one of its members) that cannot be read as far as it goes."""

    code = "corrupt_archive"


class BudgetSpent(ArchiveProblem):
    """The source's archives expand beyond the budget: a zip bomb, or a setting to raise."""

    code = "archive_budget"


@dataclass(frozen=True)
class ArchiveLimits:
    max_member_bytes: int = 256 * 1024 * 1024
    max_expanded_bytes: int = 64 * 1024**3
    max_members: int = 1_000_000
    max_depth: int = 6


@dataclass
class Budget:
    """What the archives of one source may still expand to."""

    limits: ArchiveLimits
    expanded: int = 0
    members: int = 0

    def take_bytes(self, count: int) -> None:
        self.expanded += count
        if self.expanded > self.limits.max_expanded_bytes:
            raise BudgetSpent(
                f"the archives expand beyond {self.limits.max_expanded_bytes:,} bytes "
                "(max_expanded_bytes): not read further"
            )

    def take_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise BudgetSpent(
                f"more than {self.limits.max_members:,} archive members: not read further"
            )


def archive_format(head: bytes) -> str | None:
    """``zip``, ``tar`` (any compression) or ``7z`` when ``head`` starts such an archive."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if head[257:262] == b"ustar":
        return "tar"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return "tar"  # a compressed tar; a compressed single file is named when it is opened
    return None


@dataclass
class Member:
    """A member read from an archive: its label, and either its bytes or why not."""

    name: str
    data: bytes | None = None
    digests: ExactDigests | None = None
    size: int = 0
    regular: bool = True
    problem: ArchiveProblem | None = None
    too_large: bool = False


def clean_name(name: str) -> str:
    """A member's label: forward slashes, no empty, ``.`` or absolute parts, ``..`` written as
    ``%2E%2E``, control characters as ``\\xNN``. It never becomes a file name."""
    text = name.replace("\\", "/")
    text = "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    parts = ["%2E%2E" if p == ".." else p for p in parts]
    return "/".join(parts) or "(unnamed)"


@dataclass
class _Names:
    seen: dict[str, int] = field(default_factory=dict)

    def unique(self, name: str) -> str:
        label = clean_name(name)
        count = self.seen.get(label, 0) + 1
        self.seen[label] = count
        return label if count == 1 else f"{label}~{count}"


def _read(pieces: Iterable[bytes], name: str, budget: Budget) -> Member:
    digester = Digester()
    kept: list[bytes] | None = []
    for piece in pieces:
        budget.take_bytes(len(piece))
        digester.update(piece)
        if kept is not None:
            kept.append(piece)
            if digester.size > budget.limits.max_member_bytes:
                kept = None  # too large to keep: digested only
    digests = digester.result()
    if kept is None:
        return Member(name, None, digests, digests.size, too_large=True)
    return Member(name, b"".join(kept), digests, digests.size)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        piece = stream.read(CHUNK)
        if not piece:
            return
        yield piece


def members(kind: str, source: str | bytes, budget: Budget) -> Iterator[Member]:
    """The members of an archive (a path, or bytes for a nested one) in stored order.

    A damaged member is yielded with its ``problem`` and reading goes on where the format
    allows; a damaged archive ends with an ``ArchiveProblem`` raised after the members read
    before it. ``BudgetSpent`` ends the reading."""
    if kind == "zip":
        yield from _zip_members(source, budget)
    elif kind == "tar":
        yield from _tar_members(source, budget)
    elif kind == "7z":
        yield from _sevenzip_members(source, budget)
    else:
        raise ArchiveProblem(f"unknown archive format {kind!r}")


def _open_source(source: str | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115


def _zip_members(source: str | bytes, budget: Budget) -> Iterator[Member]:
    names = _Names()
    with _open_source(source) as stream:
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise ArchiveProblem(f"unreadable zip archive: {_describe(exc)}") from exc
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                budget.take_member()
                name = names.unique(info.filename)
                if info.flag_bits & 0x1:
                    problem = ArchiveProblem("the member is encrypted")
                    problem.code = "encrypted"
                    yield Member(name, problem=problem)
                    continue
                try:
                    with archive.open(info) as member:
                        yield _read(_chunks(member), name, budget)
                except BudgetSpent:
                    raise
                except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError,
                        RuntimeError, zipfile.LargeZipFile) as exc:  # fmt: skip
                    yield Member(name, problem=ArchiveProblem(f"damaged member: {_describe(exc)}"))


def _tar_members(source: str | bytes, budget: Budget) -> Iterator[Member]:
    names = _Names()
    with _open_source(source) as stream:
        try:
            archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 (closed below)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise ArchiveProblem(f"not a readable tar archive: {_describe(exc)}") from exc
        with archive:
            try:
                for info in archive:
                    if info.isdir():
                        continue
                    budget.take_member()
                    name = names.unique(info.name)
                    if not info.isreg():
                        yield Member(name, regular=False)  # links, devices: no content
                        continue
                    extracted = archive.extractfile(info)
                    if extracted is None:
                        yield Member(name, regular=False)
                        continue
                    yield _read(_chunks(extracted), name, budget)
            except BudgetSpent:
                raise
            except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
                raise ArchiveProblem(f"damaged tar archive: {_describe(exc)}") from exc


def _sevenzip_members(source: str | bytes, budget: Budget) -> Iterator[Member]:
    import libarchive

    names = _Names()
    try:
        reader = (
            libarchive.memory_reader(source, format_name="7zip")
            if isinstance(source, bytes)
            else libarchive.file_reader(source, format_name="7zip")
        )
        with reader as archive:
            for entry in archive:
                if entry.isdir:
                    continue
                budget.take_member()
                name = names.unique(entry.pathname or "")
                if not entry.isfile:
                    yield Member(name, regular=False)
                    continue
                yield _read((bytes(block) for block in entry.get_blocks()), name, budget)
    except BudgetSpent:
        raise
    except (libarchive.ArchiveError, OSError, ValueError) as exc:
        raise ArchiveProblem(f"damaged 7z archive: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]

"""What a worker does: read files (and the archives inside them) and compute their signals.

Runs in pool processes and on Ray workers, so it touches no database: it takes plain tasks
(the file's label and where it is on disk) and gives back plain ``FileResult``s. Pictures go
through the registry's ``picture_query`` (the digests and the PDQ signal with its orientation
hashes, as every face of meldpunt builds them), videos through ``signals.video_signal``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from meldpunt.registry.matching import Query, picture_query
from meldpunt.signals import (
    VIDEO_EXTENSIONS,
    CorruptVideo,
    ExactDigests,
    FrameHash,
    HashOptions,
    NotAnImage,
    NotAVideo,
    SignalError,
    VideoOptions,
    digest_bytes,
    digest_file,
    looks_like_video,
    probe_image,
    video_signal,
)
from meldpunt.triage.archives import (
    SNIFF_BYTES,
    ArchiveLimits,
    ArchiveProblem,
    Budget,
    BudgetSpent,
    archive_format,
    members,
)
from meldpunt.triage.vocabulary import MediaKind


@dataclass(frozen=True)
class HashPlan:
    """How workers hash: picture options, video sampling, archive limits (from settings)."""

    options: HashOptions
    video: VideoOptions
    archives: ArchiveLimits
    max_video_bytes: int


@dataclass(frozen=True)
class FileResult:
    """One file (or archive member) as a worker found it."""

    path: str
    kind: MediaKind
    size: int | None
    query: Query | None = None
    frames: tuple[FrameHash, ...] = ()
    error_code: str | None = None
    error: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.query.sha256 if self.query else None


def _digest_query(digests: ExactDigests | None) -> Query | None:
    return Query.of_signals(digests, None) if digests else None


def _failed(path: str, kind: MediaKind, exc: SignalError | ArchiveProblem, size: int | None = None,
            digests: ExactDigests | None = None) -> FileResult:  # fmt: skip
    return FileResult(path, kind, size, _digest_query(digests), error_code=exc.code, error=str(exc))


def _is_video(path: str, head: bytes) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS or looks_like_video(head)


def hash_source_file(path: str, where: str, plan: HashPlan) -> list[FileResult]:
    """The results of one file on disk labelled ``path``: one, or an archive and its members."""
    try:
        size = os.stat(where).st_size
        with open(where, "rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError as exc:
        return [FileResult(path, MediaKind.other, None, error_code="unreadable",
                           error=f"cannot read the file: {exc.strerror or exc}")]  # fmt: skip
    try:
        fmt = archive_format(head)
        if fmt is not None:
            digests = digest_file(where)
            found: list[FileResult] = []
            _archive(path, where, fmt, digests, plan, Budget(plan.archives), 1, found)
            return found
        if _is_video(path, head):
            return [_video_file(path, where, size, plan)]
        if size <= plan.options.limits.max_bytes:
            with open(where, "rb") as stream:
                data = stream.read(plan.options.limits.max_bytes + 1)
            return [_picture_or_other(path, data, plan)]
        digests = digest_file(where)
        try:
            probe_image(where, plan.options.limits)
        except NotAnImage:
            return [FileResult(path, MediaKind.other, size, _digest_query(digests))]
        except SignalError as exc:
            return [_failed(path, MediaKind.picture, exc, size, digests)]
        return [FileResult(path, MediaKind.picture, size, _digest_query(digests),
                           error_code="file_too_large",
                           error=f"{size:,} bytes; the limit for pictures is "
                                 f"{plan.options.limits.max_bytes:,}")]  # fmt: skip
    except SignalError as exc:
        return [_failed(path, MediaKind.other, exc, size)]
    except OSError as exc:
        return [FileResult(path, MediaKind.other, size, error_code="unreadable",
                           error=f"cannot read the file: {exc.strerror or exc}")]  # fmt: skip


def _video_file(path: str, where: str, size: int, plan: HashPlan) -> FileResult:
    digests = digest_file(where)
    if size > plan.max_video_bytes:
        return FileResult(path, MediaKind.video, size, _digest_query(digests),
                          error_code="file_too_large",
                          error=f"{size:,} bytes; the limit for videos is "
                                f"{plan.max_video_bytes:,}")  # fmt: skip
    return _video(path, where, digests, plan)


def _video(path: str, source: str | bytes, digests: ExactDigests, plan: HashPlan) -> FileResult:
    try:
        signal = video_signal(source, plan.video)
    except NotAVideo as exc:
        if looks_like_video(_head(source)):  # a video container, damaged past reading
            problem = CorruptVideo(f"a damaged video: {exc}")
            return _failed(path, MediaKind.video, problem, digests.size, digests)
        if isinstance(source, bytes):
            return _picture_or_other(path, source, plan)
        with open(source, "rb") as stream:
            data = stream.read(plan.options.limits.max_bytes + 1)
        if len(data) > plan.options.limits.max_bytes:
            return FileResult(path, MediaKind.other, digests.size, _digest_query(digests))
        return _picture_or_other(path, data, plan)
    except SignalError as exc:
        return _failed(path, MediaKind.video, exc, digests.size, digests)
    return FileResult(path, MediaKind.video, digests.size, _digest_query(digests), signal.frames)


def _head(source: str | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:SNIFF_BYTES]
    with open(source, "rb") as stream:
        return stream.read(SNIFF_BYTES)


def _picture_or_other(path: str, data: bytes, plan: HashPlan) -> FileResult:
    query, problem = picture_query(data, plan.options)
    if problem is None:
        return FileResult(path, MediaKind.picture, len(data), query)
    if isinstance(problem, NotAnImage):
        return FileResult(path, MediaKind.other, len(data), query)
    return FileResult(path, MediaKind.picture, len(data), query, error_code=problem.code,
                      error=str(problem))  # fmt: skip


def _from_bytes(path: str, data: bytes, plan: HashPlan, budget: Budget, depth: int,
                found: list[FileResult]) -> None:  # fmt: skip
    fmt = archive_format(data[:SNIFF_BYTES])
    if fmt is not None:
        _archive(path, data, fmt, digest_bytes(data), plan, budget, depth + 1, found)
    elif _is_video(path, data[:SNIFF_BYTES]):
        found.append(_video(path, data, digest_bytes(data), plan))
    else:
        found.append(_picture_or_other(path, data, plan))


def _archive(path: str, source: str | bytes, fmt: str, digests: ExactDigests, plan: HashPlan,
             budget: Budget, depth: int, found: list[FileResult]) -> None:  # fmt: skip
    """The archive's own row, then its members' (nested archives' members in place)."""
    own = len(found)
    found.append(FileResult(path, MediaKind.archive, digests.size, _digest_query(digests)))
    if depth > plan.archives.max_depth:
        found[own] = FileResult(path, MediaKind.archive, digests.size, _digest_query(digests),
                                error_code="archive_too_deep",
                                error=f"archives nested deeper than {plan.archives.max_depth} "
                                      "levels are not opened (max_depth)")  # fmt: skip
        return
    try:
        for member in members(fmt, source, budget):
            label = f"{path}/{member.name}"
            if member.problem is not None:
                found.append(_failed(label, MediaKind.other, member.problem))
            elif not member.regular:
                found.append(FileResult(label, MediaKind.other, 0))
            elif member.too_large or member.data is None:
                found.append(FileResult(label, MediaKind.other, member.size,
                                        _digest_query(member.digests), error_code="file_too_large",
                                        error=f"a member of {member.size:,} bytes is over the "
                                        f"limit of {plan.archives.max_member_bytes:,} "
                                        "(max_member_bytes): digested only"))  # fmt: skip
            else:
                _from_bytes(label, member.data, plan, budget, depth, found)
    except ArchiveProblem as exc:
        found[own] = _failed(path, MediaKind.archive, exc, digests.size, digests)
        if isinstance(exc, BudgetSpent) and depth > 1:
            raise


def hash_batch(tasks: Sequence[tuple[str, str]], plan: HashPlan) -> list[FileResult]:
    """The results of a batch of (label, path on disk) tasks, in order."""
    out: list[FileResult] = []
    for path, where in tasks:
        out.extend(hash_source_file(path, where, plan))
    return out

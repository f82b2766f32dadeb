"""What a hashed file is: known, ignorable, new or an error, by the registry's ``Matcher``.

Pictures (and every file's digests) are matched as the check service matches them
(``Matcher.match_many``: blocklists within each set's threshold, allow-lists suppressing, the
orientation hashes searched too). A video's digests are matched the same way and each sampled
frame's PDQ hash as a picture: frames find picture entries and the frames of video entries. A
video is known by its digests, or when enough of its usable frames match (``VideoRule``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meldpunt.registry.matching import Match, MatchAnswer, Matcher, Query
from meldpunt.triage.hashing import FileResult
from meldpunt.triage.vocabulary import FileClass, MediaKind


@dataclass(frozen=True)
class VideoRule:
    """When a video counts as known by its frames (settings ``triage_video_known_*``)."""

    share: float = 0.5
    min_frames: int = 1
    min_quality: int = 50

    def needed(self, usable: int) -> int:
        return max(self.min_frames, math.ceil(self.share * usable))


@dataclass(frozen=True)
class Verdict:
    file_class: FileClass
    matches: list[dict[str, Any]] = field(default_factory=list)
    frames_matched: int | None = None


def _match_dict(match: Match, frames: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "set": match.set,
        "entry": match.entry,
        "category": match.category,
        "distance": match.distance,
        "signal": match.signal_type,
    }
    if frames is not None:
        out["frames"] = frames
    return out


def _plain_class(result: FileResult, answer: MatchAnswer) -> FileClass:
    if answer.matches:
        return FileClass.known
    if answer.allowlisted:
        return FileClass.ignorable
    if result.error_code is not None:
        return FileClass.error
    if result.kind in (MediaKind.picture, MediaKind.video):
        return FileClass.new
    return FileClass.ignorable


def classify(
    results: Sequence[FileResult], matcher: Matcher, rule: VideoRule = VideoRule()
) -> list[Verdict]:
    """One verdict per result, in order."""
    answers = matcher.match_many(
        [r.query or Query() for r in results], min_quality=rule.min_quality
    )
    frame_queries: list[Query] = []
    owners: list[int] = []
    for i, result in enumerate(results):
        for frame in result.frames:
            if frame.quality >= rule.min_quality:
                frame_queries.append(Query(pdq=frame.hash, pdq_quality=frame.quality))
                owners.append(i)
    frame_answers = (
        matcher.match_many(frame_queries, min_quality=rule.min_quality) if frame_queries else []
    )
    by_video: dict[int, list[MatchAnswer]] = {}
    for owner, answer in zip(owners, frame_answers, strict=True):
        by_video.setdefault(owner, []).append(answer)
    verdicts = []
    for i, (result, answer) in enumerate(zip(results, answers, strict=True)):
        if result.kind is not MediaKind.video or answer.matches or answer.allowlisted:
            verdicts.append(
                Verdict(_plain_class(result, answer), [_match_dict(m) for m in answer.matches])
            )
            continue
        verdicts.append(_video_verdict(result, by_video.get(i, []), rule))
    return verdicts


def _video_verdict(result: FileResult, frames: list[MatchAnswer], rule: VideoRule) -> Verdict:
    matched = sum(1 for answer in frames if answer.matches)
    if result.error_code is not None and not matched:
        return Verdict(FileClass.error, [], 0)
    best: dict[tuple[int, int], tuple[Match, int]] = {}
    for answer in frames:
        for match in answer.matches:
            key = (match.set_id, match.entry)
            kept = best.get(key)
            if kept is None:
                best[key] = (match, 1)
            else:
                closer = match if match.distance < kept[0].distance else kept[0]
                best[key] = (closer, kept[1] + 1)
    ordered = sorted(best.values(), key=lambda mc: (-mc[1], mc[0].distance, mc[0].set))
    found = [_match_dict(m, count) for m, count in ordered]
    if frames and matched >= rule.needed(len(frames)):
        return Verdict(FileClass.known, found, matched)
    if result.error_code is not None:
        return Verdict(FileClass.error, found, matched)
    return Verdict(FileClass.new, found, matched)

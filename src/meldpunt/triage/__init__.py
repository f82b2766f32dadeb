"""Triage of seized collections: every file known, ignorable, new or an error, new material in
groups of near-copies, resumable, on one machine or a Ray cluster (``docs/triage.md``).

    from meldpunt.triage import LocalHasher, plan_from, rule_from, run_case
    report = run_case("case-1", [Path("phone")], plan=plan_from(settings),
                      rule=rule_from(settings), hasher=LocalHasher(4))
"""

from __future__ import annotations

from meldpunt.config import Settings
from meldpunt.signals import HashOptions, ImageLimits, VideoOptions
from meldpunt.triage.archives import ArchiveLimits
from meldpunt.triage.cases import get_case, list_cases
from meldpunt.triage.classify import Verdict, VideoRule, classify
from meldpunt.triage.decisions import ExportResult, decide, export
from meldpunt.triage.errors import (
    BadInput,
    CaseConflict,
    CaseNotFound,
    ClusterUnavailable,
    TriageError,
)
from meldpunt.triage.hashing import FileResult, HashPlan, hash_source_file
from meldpunt.triage.outputs import file_record, summary, write_all, write_jsonl
from meldpunt.triage.run import Hasher, LocalHasher, RayHasher, RunReport, run_case, walk
from meldpunt.triage.vocabulary import CaseState, Decision, FileClass, MediaKind

__all__ = [
    "ArchiveLimits",
    "BadInput",
    "CaseConflict",
    "CaseNotFound",
    "CaseState",
    "ClusterUnavailable",
    "Decision",
    "ExportResult",
    "FileClass",
    "FileResult",
    "HashPlan",
    "Hasher",
    "LocalHasher",
    "MediaKind",
    "RayHasher",
    "RunReport",
    "TriageError",
    "Verdict",
    "VideoRule",
    "classify",
    "decide",
    "export",
    "file_record",
    "get_case",
    "hash_source_file",
    "list_cases",
    "plan_from",
    "rule_from",
    "run_case",
    "summary",
    "walk",
    "write_all",
    "write_jsonl",
]


def plan_from(settings: Settings) -> HashPlan:
    """How workers hash, from the settings: pictures with their orientation hashes (so a
    turned or mirrored copy is still known), videos sampled, archives within limits."""
    return HashPlan(
        options=HashOptions(
            dihedral=True,
            trim=settings.pdq_trim,  # a bordered copy's second hash, as the check service
            features=0,  # local features are the check service's: too costly per file in bulk
            exif_transpose=settings.exif_transpose,
            min_quality=settings.pdq_min_quality,
            limits=ImageLimits(max_bytes=settings.max_image_bytes,
                               max_pixels=settings.max_image_pixels),
        ),
        video=VideoOptions(
            seconds_per_frame=settings.triage_video_seconds_per_frame,
            max_frames=settings.triage_video_max_frames,
            max_frame_pixels=settings.max_image_pixels,
            min_quality=settings.pdq_min_quality,
        ),
        archives=ArchiveLimits(
            max_member_bytes=settings.triage_max_member_bytes,
            max_expanded_bytes=settings.triage_max_expanded_bytes,
            max_members=settings.triage_max_archive_members,
            max_depth=settings.triage_max_archive_depth,
        ),
        max_video_bytes=settings.triage_max_video_bytes,
    )  # fmt: skip


def rule_from(settings: Settings) -> VideoRule:
    return VideoRule(
        share=settings.triage_video_known_share,
        min_frames=settings.triage_video_known_frames,
        min_quality=settings.pdq_min_quality,
    )

"""The words of triage."""

from __future__ import annotations

from enum import StrEnum


class FileClass(StrEnum):
    """What a file of a collection turned out to be."""

    known = "known"  # matches the registry's blocklists
    ignorable = "ignorable"  # an allow-list match, or not a picture or video at all
    new = "new"  # a picture or video the registry does not know
    error = "error"  # unreadable, corrupt, too large: named, and the run went on


class MediaKind(StrEnum):
    picture = "picture"
    video = "video"
    archive = "archive"
    other = "other"


class CaseState(StrEnum):
    running = "running"
    done = "done"


class Decision(StrEnum):
    """A reviewer's decision on a group of new material."""

    illegal = "illegal"
    not_illegal = "not_illegal"

"""New material in groups: files within the registry's PDQ threshold of each other (any
orientation) form one group, found with the PDQ index itself; exact copies (the same SHA-256)
collapse. A group is shown once, with its size, so that one look covers its near-copies.

Groups are numbered from 1 in the order of their first path, so the same files give the same
groups however often and in whatever order they were hashed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from meldpunt.index import PdqIndex
from meldpunt.store.models import TriageFile, TriageGroup
from meldpunt.triage.vocabulary import FileClass


@dataclass(frozen=True)
class Candidate:
    id: int
    path: str
    kind: str
    sha256: str | None
    pdq: str | None
    quality: int | None
    orientations: tuple[str, ...]


class _Union:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(files: Sequence[Candidate], radius: int, min_quality: int) -> list[list[int]]:
    """Indexes into ``files`` grouped: the same SHA-256, or PDQ within ``radius`` (a hash of
    quality below ``min_quality`` joins only its exact copies)."""
    union = _Union(len(files))
    first_of: dict[str, int] = {}
    for i, f in enumerate(files):
        if f.sha256:
            union.join(i, first_of.setdefault(f.sha256, i))
    usable = [i for i, f in enumerate(files) if f.pdq and (f.quality or 0) >= min_quality]
    if usable:
        index = PdqIndex.from_hex([files[i].pdq or "" for i in usable])
        try:
            queries: list[str] = []
            owners: list[int] = []
            for i in usable:
                for value in dict.fromkeys((files[i].pdq or "", *files[i].orientations)):
                    queries.append(value)
                    owners.append(i)
            found = index.query_batch(queries, radius)
            for q, slot in zip(found.query.tolist(), found.slot.tolist(), strict=True):
                union.join(owners[q], usable[slot])
        finally:
            index.close()
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(files)):
        members[union.find(i)].append(i)
    groups = [sorted(g, key=lambda i: files[i].path) for g in members.values()]
    return sorted(groups, key=lambda g: files[g[0]].path)


def _representative(files: Sequence[Candidate], group: list[int]) -> Candidate:
    return min((files[i] for i in group), key=lambda f: (-(f.quality or 0), f.path))


def group_new(session: Session, case_id: int, radius: int, min_quality: int) -> int:
    """Group the case's new files (flushed, not committed); returns the number of groups.
    Groups already decided are kept as they are; grouping runs once, when a case finishes."""
    if session.scalar(select(TriageGroup.id).where(TriageGroup.case_id == case_id).limit(1)):
        return len(list(session.scalars(select(TriageGroup.id).where(
            TriageGroup.case_id == case_id))))  # fmt: skip
    rows = session.execute(
        select(TriageFile.id, TriageFile.path, TriageFile.kind, TriageFile.sha256,
               TriageFile.pdq, TriageFile.pdq_quality, TriageFile.pdq_dihedral)
        .where(TriageFile.case_id == case_id, TriageFile.file_class == FileClass.new)
    )  # fmt: skip
    files = [
        Candidate(r[0], r[1], r[2], r[3], r[4], r[5], tuple((r[6] or "").split())) for r in rows
    ]
    groups = cluster(files, radius, min_quality)
    numbers: list[dict[str, int]] = []
    made: list[dict[str, object]] = []
    for number, group in enumerate(groups, start=1):
        chosen = _representative(files, group)
        numbers.extend({"id": files[i].id, "group_number": number} for i in group)
        made.append({
            "case_id": case_id, "number": number, "kind": chosen.kind, "files": len(group),
            "distinct_files": len({files[i].sha256 or files[i].path for i in group}),
            "representative": chosen.path,
        })  # fmt: skip
    # written set-wise: most groups are one file, and a statement per group was most of the time
    for start in range(0, len(numbers), 5000):
        session.execute(update(TriageFile), numbers[start : start + 5000])
    for start in range(0, len(made), 5000):
        session.execute(insert(TriageGroup), made[start : start + 5000])
    session.flush()
    return len(groups)

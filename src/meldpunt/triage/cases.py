"""Cases and their files in the database: the case's progress lives here, so that a run that
was interrupted continues where it stopped."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from meldpunt import audit
from meldpunt.clock import now
from meldpunt.store.models import TriageCase, TriageFile, TriageGroup
from meldpunt.text import TextError, check_name
from meldpunt.triage.classify import Verdict
from meldpunt.triage.errors import BadInput, CaseConflict, CaseNotFound
from meldpunt.triage.hashing import FileResult
from meldpunt.triage.vocabulary import CaseState

_READ_CHUNK = 5000


def path_key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def check_case_name(name: str) -> str:
    try:
        return check_name(name, "a case's name")
    except TextError as exc:
        raise BadInput(str(exc)) from None


def open_case(session: Session, name: str, sources: Sequence[str], *, actor: str) -> TriageCase:
    """The case called ``name``, made now when new. A case keeps the sources it was started
    with: continuing it with other sources is refused (give the run a new name)."""
    name = check_case_name(name)
    row = session.scalar(select(TriageCase).where(TriageCase.name == name))
    listed = json.dumps(list(sources))
    if row is not None:
        if row.sources != listed:
            raise CaseConflict(
                f"case {name!r} was started with the sources {json.loads(row.sources)}; "
                "continue it with the same sources, or give this run a new case name"
            )
        return row
    at = now()
    row = TriageCase(name=name, state=CaseState.running, sources=listed, created_by=actor,
                     created_at=at, updated_at=at, seconds=0.0, runs=0)  # fmt: skip
    session.add(row)
    session.flush()
    details = {"name": name, "sources": list(sources)}
    audit.record(session, actor=actor, action="triage.case.created",
                 subject=("triage_case", row.id), details=details)  # fmt: skip
    return row


def get_case(session: Session, name: str) -> TriageCase:
    row = session.scalar(select(TriageCase).where(TriageCase.name == name))
    if row is None:
        raise CaseNotFound(f"no triage case named {name!r}")
    return row


def get_case_by_id(session: Session, case_id: int) -> TriageCase:
    row = session.get(TriageCase, case_id)
    if row is None:
        raise CaseNotFound(f"no triage case {case_id}")
    return row


def list_cases(session: Session) -> list[TriageCase]:
    return list(session.scalars(select(TriageCase).order_by(TriageCase.created_at.desc())))


def recorded_paths(session: Session, case_id: int) -> set[str]:
    """The labels of the files already recorded for the case (what a resumed run skips)."""
    rows = session.execute(
        select(TriageFile.path).where(TriageFile.case_id == case_id).execution_options(
            yield_per=_READ_CHUNK)
    )  # fmt: skip
    return {path for (path,) in rows}


def record(
    session: Session, case_id: int, results: Sequence[FileResult], verdicts: Sequence[Verdict]
) -> Counter[str]:
    """Write one batch's files (flushed, not committed); returns the count per class."""
    at = now()
    rows: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for result, verdict in zip(results, verdicts, strict=True):
        query = result.query
        frames = [[f.hash, f.quality, f.seconds] for f in result.frames]
        rows.append({
            "case_id": case_id, "path": result.path, "path_key": path_key(result.path),
            "kind": str(result.kind), "file_class": str(verdict.file_class), "size": result.size,
            "md5": query.md5 if query else None, "sha1": query.sha1 if query else None,
            "sha256": query.sha256 if query else None, "pdq": query.pdq if query else None,
            "pdq_quality": query.pdq_quality if query else None,
            "pdq_dihedral": " ".join(query.pdq_dihedral) if query and query.pdq_dihedral else None,
            "frames": json.dumps(frames) if frames else None,
            "frames_matched": verdict.frames_matched,
            "matches": json.dumps(verdict.matches) if verdict.matches else None,
            "group_number": None, "error_code": result.error_code,
            "error": result.error[:2000] if result.error else None, "recorded_at": at,
        })  # fmt: skip
        counts[verdict.file_class] += 1
    if rows:
        session.execute(insert(TriageFile), rows)
    return counts


def add_run_time(session: Session, case: TriageCase, seconds: float, registry_seq: int) -> None:
    case.seconds = float(case.seconds or 0.0) + seconds
    case.registry_seq = registry_seq
    case.updated_at = now()


def start_run(session: Session, case: TriageCase) -> None:
    case.runs = int(case.runs or 0) + 1
    case.updated_at = now()


def finish(session: Session, case: TriageCase, *, actor: str) -> None:
    case.state = CaseState.done
    case.finished_at = case.updated_at = now()
    counts = class_counts(session, case.id)
    audit.record(session, actor=actor, action="triage.case.finished",
                 subject=("triage_case", case.id), details=counts)  # fmt: skip


def class_counts(session: Session, case_id: int) -> dict[str, int]:
    rows = session.execute(
        select(TriageFile.file_class, func.count())
        .where(TriageFile.case_id == case_id)
        .group_by(TriageFile.file_class)
    )
    return {str(k): int(v) for k, v in rows}


@dataclass(frozen=True)
class FileRow:
    """A recorded file as the outputs show it."""

    path: str
    kind: str
    file_class: str
    size: int | None
    md5: str | None
    sha1: str | None
    sha256: str | None
    pdq: str | None
    pdq_quality: int | None
    frames: list[list[Any]]
    frames_matched: int | None
    matches: list[dict[str, Any]]
    group: int | None
    error_code: str | None
    error: str | None


def iter_files(session: Session, case_id: int, file_class: str | None = None) -> Iterator[FileRow]:
    """The case's files in path order (read in chunks)."""
    query = select(TriageFile).where(TriageFile.case_id == case_id)
    if file_class is not None:
        query = query.where(TriageFile.file_class == file_class)
    for row in session.scalars(query.order_by(TriageFile.path).execution_options(
            yield_per=_READ_CHUNK)):  # fmt: skip
        yield FileRow(
            row.path, row.kind, row.file_class, row.size, row.md5, row.sha1, row.sha256, row.pdq,
            row.pdq_quality, json.loads(row.frames) if row.frames else [], row.frames_matched,
            json.loads(row.matches) if row.matches else [], row.group_number, row.error_code,
            row.error,
        )  # fmt: skip


def groups_of(session: Session, case_id: int) -> list[TriageGroup]:
    return list(
        session.scalars(
            select(TriageGroup).where(TriageGroup.case_id == case_id).order_by(TriageGroup.number)
        )
    )

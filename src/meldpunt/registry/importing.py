"""Importing a file into a set: any format, any size, in batches, idempotent.

    with Session(engine) as session:
        summary = import_file(session, "police-nl", "export.json", progress=print)
    summary.added, summary.updated, summary.unchanged, summary.rejected, summary.problems

The format is recognised from the file's first bytes unless named. Records are read as a stream
and applied ``batch_size`` at a time, each batch in its own transaction (committed here), so a
file of any size works and an interrupted import keeps what it committed: running it again
finishes the rest and leaves the rest unchanged. A malformed record (bad hex, wrong length,
unknown signal type, broken JSON, missing field) is reported with its line or record number and
skipped; everything else is imported.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import text
from sqlalchemy.orm import Session

from meldpunt.registry.batch import ItemInput, apply_items, normalize_signals
from meldpunt.registry.categories import CODES, Category, classify
from meldpunt.registry.errors import FormatError, InvalidInput
from meldpunt.registry.features import keep_features
from meldpunt.registry.formats import FORMATS, SNIFF_BYTES, detect
from meldpunt.registry.records import ImportRecord, ReadOptions, RecordProblem
from meldpunt.registry.sets import HashSetInfo, SetRef, get_set
from meldpunt.registry.vocabulary import ITEM_STATUSES

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ImportProgress",
    "ImportSummary",
    "Problem",
    "import_file",
    "import_stream",
]

DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class Problem:
    #: Line number, or record number for VICS.
    number: int
    reason: str


@dataclass(frozen=True)
class ImportProgress:
    records: int
    bytes_read: int


@dataclass
class ImportSummary:
    set_name: str
    format: str
    records: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    #: The first ``max_problems`` problems, in file order.
    problems: list[Problem] = field(default_factory=list)
    max_problems: int = 100
    #: Raw category values the vocabulary does not know, as (scheme, raw) -> records; they are
    #: kept as raw values with the code ``unknown``.
    unknown_categories: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    #: Why reading stopped early (broken JSON in a stream), None when the whole file was read.
    aborted: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None

    @property
    def complete(self) -> bool:
        return self.aborted is None

    def problem(self, number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(number, reason))


class _Counting(io.RawIOBase):
    """Serves ``head`` (already read for format detection), then the rest; counts bytes."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            data = self._rest.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        return n


def _category(record: ImportRecord, hash_set: HashSetInfo) -> Category | None:
    if record.category_code is not None:
        code = record.category_code if record.category_code in CODES else "unknown"
        return Category(code, record.category_raw, record.category_scheme)
    if record.category_raw is None or not record.category_raw.strip():
        return None
    return classify(record.category_raw, record.category_scheme, default=hash_set.default_category)


def _item(record: ImportRecord, hash_set: HashSetInfo) -> ItemInput:
    """Raises InvalidInput with the reason the record is rejected."""
    if record.status is not None and record.status not in ITEM_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ITEM_STATUSES)}")
    return ItemInput(
        signals=normalize_signals(record.signals),
        category=_category(record, hash_set),
        reference=record.reference[:200] if record.reference else None,
        note=record.note,
        status=record.status,
    )


class _Statistics:
    """Keeps PostgreSQL's planner statistics in step while an import grows the tables.

    On a table it believes small, the planner checks each looked-up value against every row of
    the set instead of using the index; ANALYZE after the first batch and whenever the number
    of imported items has doubled (a handful of times per import) keeps lookups on the index.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._next = 1

    def after(self, written: int) -> None:
        if not self._postgres or written < self._next:
            return
        self._next = written * 2
        for table in ("items", "item_signals"):
            self._session.execute(text(f"ANALYZE {table}"))
        self._session.commit()


def import_stream(
    session: Session,
    hash_set: SetRef,
    stream: BinaryIO,
    *,
    format: str = "auto",
    vic_profile: str = "vics",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[ImportProgress], None] | None = None,
    actor: str = "system",
    source: str | None = None,
    max_problems: int = 100,
) -> ImportSummary:
    """Import ``stream`` (binary) into the set; commits ``session`` after every batch.

    Raises NotFound for an unknown set and FormatError when the format is not recognised (or
    not known) or the stream cannot be read as that format at all.
    """
    info = get_set(session, hash_set)
    session.commit()  # each batch starts a transaction of its own, with the lock (see locking)
    head = stream.read(SNIFF_BYTES)
    name = detect(head) if format == "auto" else format
    if name is None:
        raise FormatError(
            "cannot tell the file's format; name it (vics, icse, te-csv, plain, jsonl)"
        )
    if name not in FORMATS:
        raise FormatError(f"unknown format {name!r} (known: {', '.join(FORMATS)})")
    if vic_profile not in ("vics", "us"):
        raise InvalidInput(f"unknown Project VIC profile {vic_profile!r} (vics or us)")
    counting = _Counting(head, stream)
    reader = FORMATS[name].read(io.BufferedReader(counting, 1 << 16), ReadOptions(vic_profile))
    summary = ImportSummary(info.name, name, max_problems=max_problems)
    pending: list[tuple[int, ItemInput]] = []
    statistics = _Statistics(session)

    def flush() -> None:
        if pending:
            items = [item for _, item in pending]
            result = apply_items(
                session, info.id, items, actor=actor, audit_each=False, source=source
            )
            for (number, _), outcome in zip(pending, result.outcomes, strict=True):
                if outcome.outcome == "rejected":
                    summary.problem(number, outcome.problem or "rejected")
                else:
                    setattr(summary, outcome.outcome, getattr(summary, outcome.outcome) + 1)
            if result.seqs:
                summary.first_seq = summary.first_seq or result.seqs[0]
                summary.last_seq = result.seqs[1]
            pending.clear()
        session.commit()
        statistics.after(summary.added + summary.updated)
        if progress is not None:
            progress(ImportProgress(summary.records, counting.count))

    try:
        for record in reader:
            if isinstance(record, RecordProblem):
                if record.fatal:
                    summary.aborted = record.reason
                    break
                summary.records += 1
                summary.problem(record.number, record.reason)
                continue
            summary.records += 1
            try:
                item = _item(record, info)
            except InvalidInput as exc:
                summary.problem(record.number, str(exc))
                continue
            if item.category is not None and item.category.code == "unknown":
                summary.unknown_categories[(item.category.scheme, item.category.raw)] += 1
            if record.features is not None:
                keep_features(session, record.features)
            pending.append((record.number, item))
            if len(pending) >= batch_size:
                flush()
    except UnicodeError as exc:
        summary.aborted = f"not readable as text: {exc}"
    if summary.aborted and summary.records == 0:
        raise FormatError(f"cannot read the file as {name}: {summary.aborted}")
    flush()
    return summary


def import_file(
    session: Session, hash_set: SetRef, path: str | Path, **options: object
) -> ImportSummary:
    """``import_stream`` on the file at ``path``; ``source`` defaults to the file's name."""
    path = Path(path)
    options.setdefault("source", path.name)
    with path.open("rb") as stream:
        return import_stream(session, hash_set, stream, **options)  # type: ignore[arg-type]

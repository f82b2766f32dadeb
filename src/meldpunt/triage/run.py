"""Running a case: walk the sources, hash in parallel (a process pool, or a Ray cluster),
match and record each batch as it comes back, and group the new material at the end.

The driver commits every batch with its files, so a run that is killed loses at most the
batches in flight; run again with the same case name and it skips every file already
recorded (an archive and its members are recorded together, in one batch). Nothing that was
recorded is hashed again.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from meldpunt import clock
from meldpunt.registry.matching import Matcher
from meldpunt.registry.sets import DEFAULT_PDQ_THRESHOLD
from meldpunt.store import session_scope
from meldpunt.triage import cases
from meldpunt.triage.archives import clean_name
from meldpunt.triage.classify import VideoRule, classify
from meldpunt.triage.errors import BadInput, ClusterUnavailable
from meldpunt.triage.grouping import group_new
from meldpunt.triage.hashing import FileResult, HashPlan, hash_batch
from meldpunt.triage.vocabulary import CaseState, MediaKind

Task = tuple[str, str]  # (label, path on disk)
Progress = Callable[[int, int], None]  # (files done this run, files to do this run)


@dataclass
class RunReport:
    case: str
    state: str
    files_total: int  # top-level files of the sources
    skipped: int  # recorded by an earlier run
    hashed: int  # top-level files hashed by this run
    recorded: int  # rows written by this run (archives' members included)
    classes: Counter[str] = field(default_factory=Counter)
    groups: int = 0
    seconds: float = 0.0


def walk(sources: Sequence[Path]) -> Iterator[Task]:
    """Every file under the sources in a stable order, labelled by its path from the source's
    own name (``phone/photos.zip``). Links are not followed; they are listed as they are."""
    used: Counter[str] = Counter()
    for source in sources:
        base = clean_name(source.name or str(source))
        used[base] += 1
        if used[base] > 1:
            base = f"{base}~{used[base]}"
        if source.is_dir() and not source.is_symlink():
            for root, dirs, files in os.walk(source):
                dirs.sort()
                relative = Path(root).relative_to(source)
                prefix = "/".join([base, *(clean_name(p) for p in relative.parts)])
                for name in sorted(files):
                    yield f"{prefix}/{clean_name(name)}", os.path.join(root, name)
                # links to folders are listed in ``dirs`` but not walked into
                for name in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                    yield f"{prefix}/{clean_name(name)}", os.path.join(root, name)
        else:
            yield base, str(source)


def _links_and_specials(task: Task) -> FileResult | None:
    """Links and special files (FIFOs, devices) are listed, never opened: reading a FIFO would
    wait for ever, a link may point out of the collection."""
    try:
        info = os.lstat(task[1])
    except OSError as exc:
        return FileResult(task[0], MediaKind.other, None, error_code="unreadable",
                          error=f"cannot read the file: {exc.strerror or exc}")  # fmt: skip
    if stat.S_ISREG(info.st_mode):
        return None
    return FileResult(task[0], MediaKind.other, 0)


def hash_tasks(tasks: Sequence[Task], plan: HashPlan) -> list[FileResult]:
    """What a worker runs on a batch: links and special files listed, the rest hashed."""
    out: list[FileResult] = []
    for task in tasks:
        special = _links_and_specials(task)
        out.extend([special] if special is not None else hash_batch([task], plan))
    return out


class Hasher:
    """Runs batches somewhere and gives back (batch, results) as they complete."""

    def run(self, batches: Iterator[list[Task]], plan: HashPlan
            ) -> Iterator[tuple[list[Task], list[FileResult]]]:  # fmt: skip
        raise NotImplementedError

    def close(self) -> None:
        return None


class LocalHasher(Hasher):
    """In this process (one worker), or a process pool of ``workers``."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def run(self, batches: Iterator[list[Task]], plan: HashPlan
            ) -> Iterator[tuple[list[Task], list[FileResult]]]:  # fmt: skip
        if self.workers == 1:
            for batch in batches:
                yield batch, hash_tasks(batch, plan)
            return
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            pending: dict[Future[list[FileResult]], list[Task]] = {}
            for batch in batches:
                pending[pool.submit(hash_tasks, batch, plan)] = batch
                if len(pending) >= 2 * self.workers:
                    yield from _completed(pending)
            while pending:
                yield from _completed(pending)


def _completed(pending: dict[Future[list[FileResult]], list[Task]]
               ) -> Iterator[tuple[list[Task], list[FileResult]]]:  # fmt: skip
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for future in done:
        yield pending.pop(future), future.result()


def run_case(
    name: str,
    sources: Sequence[Path],
    *,
    plan: HashPlan,
    rule: VideoRule,
    hasher: Hasher,
    bind: sessionmaker[Session] | None = None,
    matcher: Matcher | None = None,
    batch_files: int = 32,
    actor: str = "cli",
    progress: Progress | None = None,
) -> RunReport:
    """Run (or continue) the case ``name`` over ``sources``; returns what this run did."""
    missing = [str(s) for s in sources if not s.exists() and not s.is_symlink()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    labels = [str(s) for s in sources]
    started = clock.perf()
    with session_scope(bind) as session:
        case = cases.open_case(session, name, labels, actor=actor)
        cases.start_run(session, case)
        case_id = case.id
        finished_before = case.state == CaseState.done
        done = cases.recorded_paths(session, case_id)
        if matcher is None:
            matcher = Matcher.build(session)
        else:
            matcher.refresh(session)
    tasks = [t for t in walk(sources)]
    # a finished case is final (its groups may be decided already): nothing more is hashed
    todo = [] if finished_before else [t for t in tasks if t[0] not in done]
    skipped = sum(1 for t in tasks if t[0] in done)
    report = RunReport(name, CaseState.running, len(tasks), skipped, 0, 0)
    finished = 0
    if progress is not None:
        progress(0, len(todo))

    def batches() -> Iterator[list[Task]]:
        for start in range(0, len(todo), batch_files):
            yield todo[start : start + batch_files]

    try:
        for batch, results in hasher.run(batches(), plan):
            results = [r for r in results if r.path not in done]
            verdicts = classify(results, matcher, rule)
            with session_scope(bind) as session:
                counts = cases.record(session, case_id, results, verdicts)
                case = cases.get_case(session, name)
                cases.add_run_time(session, case, clock.perf() - started, matcher.seq)
            started = clock.perf()
            done.update(r.path for r in results)
            report.classes.update(counts)
            report.recorded += len(results)
            report.hashed += len(batch)
            finished += len(batch)
            if progress is not None:
                progress(finished, len(todo))
    finally:
        hasher.close()
    radius = max(
        (s.pdq_threshold for s in matcher.sets.values() if s.active and not s.is_allowlist),
        default=DEFAULT_PDQ_THRESHOLD,
    )
    with session_scope(bind) as session:
        case = cases.get_case(session, name)
        report.groups = group_new(session, case_id, radius, rule.min_quality)
        cases.add_run_time(session, case, clock.perf() - started, matcher.seq)
        if case.state != CaseState.done:
            cases.finish(session, case, actor=actor)
        report.state = CaseState.done
        report.seconds = float(case.seconds)
    return report


class RayHasher(Hasher):
    """Hashing on a Ray cluster: each batch is a task that reads and hashes its files on the
    worker that runs it (the files must be where the workers can read them, at the same path);
    the driver matches and records. ``address``: a running cluster (``HOST:PORT``), ``auto``,
    or ``local`` to start one in this process with ``workers`` worker processes."""

    def __init__(self, address: str, workers: int = 0) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ClusterUnavailable("Ray is not installed: pip install 'meldpunt[ray]'") from exc
        self._ray = ray
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "ignore_reinit_error": True}  # fmt: skip
        if address == "local":
            options.update(address="local", num_cpus=workers or None,
                           object_store_memory=256 * 1024 * 1024,
                           _node_ip_address="127.0.0.1")  # fmt: skip
        else:
            options["address"] = address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterUnavailable(f"no Ray cluster at {address}: {exc}") from exc
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1)(hash_tasks)

    def run(self, batches: Iterator[list[Task]], plan: HashPlan
            ) -> Iterator[tuple[list[Task], list[FileResult]]]:  # fmt: skip
        ray = self._ray
        plan_ref = ray.put(plan)
        pending: dict[object, list[Task]] = {}

        def drain() -> Iterator[tuple[list[Task], list[FileResult]]]:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                yield pending.pop(ref), ray.get(ref)

        for batch in batches:
            pending[self._task.remote(batch, plan_ref)] = batch
            if len(pending) >= 2 * self.workers:
                yield from drain()
        while pending:
            yield from drain()

    def close(self) -> None:
        self._ray.shutdown()

"""``meldpunt audit ...``: check the audit log and the rows it vouches for (thin).

meldpunt audit verify          # exit code 1 when anything does not fit
meldpunt audit tail -n 20      # the newest events
"""

from __future__ import annotations

from typing import Annotated

import typer

from meldpunt.cli.common import group
from meldpunt.cli.common import stdout as _stdout

__all__ = ["audit_app"]

audit_app = group("The tamper-evident audit log: verify the chain and the rows it covers.")


@audit_app.command("verify")
def verify_command() -> None:
    """Walk the audit chain, print its head (event id and hash) and count, and compare the
    disputable rows (hits' outcomes, entries' status, category and signals, keys' roles, the
    change log) with what the log vouches for. Exit code 1 when anything does not fit."""
    from meldpunt.audit_verify import verify_all
    from meldpunt.store import init_db, session_scope

    init_db()
    with session_scope() as session:
        report = verify_all(session)
    console = _stdout()
    chain = report.chain
    head = f"head #{chain.head_id} {chain.head}" if chain.head_id is not None else "empty"
    if chain.ok:
        console.print(f"chain intact: {chain.count} events, {head}", highlight=False)
    else:
        console.print(
            f"chain broken at event {chain.first_broken_id}: {chain.reason}; "
            f"last intact: {head} ({chain.count - 1} events)",
            highlight=False,
        )
    for problem in report.rows:
        console.print(
            f"{problem.table} {problem.row} ({', '.join(problem.fields)}): {problem.detail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if report.rows:
        console.print(f"{len(report.rows)} row(s) differ from the audit log", highlight=False)
    elif chain.ok:
        console.print("rows: every disputable row fits the audit log", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("tail")
def tail_command(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many events.")] = 20,
) -> None:
    """Print the newest events (id, time, actor, action, subject), oldest first."""
    from sqlalchemy import select

    from meldpunt.audit import AuditEvent
    from meldpunt.store import init_db, session_scope

    init_db()
    with session_scope() as session:
        events = list(
            session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count))
        )
        lines = [
            f"#{e.id} {e.at.isoformat(timespec='seconds')} {e.actor} {e.action}"
            + (f" {e.subject_type} {e.subject_id}" if e.subject_type else "")
            for e in reversed(events)
        ]
    for line in lines:
        print(line)

"""``meldpunt authority ...`` and ``meldpunt hosters ...``: the authority's cases, orders and
fines, and what the operator knows of hosters.

    meldpunt authority escalations
    meldpunt authority open --items 12,13,14
    meldpunt authority open --url https://images.example/a.jpg
    meldpunt authority open --asn 64500
    meldpunt authority cases
    meldpunt authority case 3
    meldpunt authority order 3 --hours 1 --reasons "Ignored three notices." --public
    meldpunt authority orders --status unmet
    meldpunt authority fine --asn 64500 --share 0.01 --basis "Art. 2" --reasons "..."
    meldpunt authority record 64500 --format json
    meldpunt hosters load hosters.csv
    meldpunt hosters set 64500 --turnover 2500000 --year 2025 --name "Polder Hosting B.V."
    meldpunt hosters list

The database is the configured one (``database_url``), migrated on first use. Orders are
mailed and evaluated by the worker (``meldpunt serve`` or ``meldpunt worker``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from meldpunt.cli.common import fail, group, registry_session, stderr, stdout, table
from meldpunt.errors import MeldpuntError

__all__ = ["authority_app", "hosters_app"]

ACTOR = "cli"

authority_app = group("The authority: escalations, cases, removal orders, penalties and fines.")
hosters_app = group("What is known of hosters by AS number: name, size, turnover.")


class Format(StrEnum):
    table = "table"
    json = "json"


@contextmanager
def authority_session() -> Iterator[Session]:
    """The configured database's session; the domain's errors end the command."""
    try:
        with registry_session() as session:
            yield session
    except MeldpuntError as exc:
        fail(str(exc))


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        fail(f"{text[:80]!r} is not a list of item ids (12,13,14)")


def _euros(cents: int | None) -> str:
    return "—" if cents is None else f"€{cents / 100:,.2f}"


def _delivery(order: dict[str, Any]) -> str:
    if order["delivered_at"]:
        return str(order["delivered_at"])[:16]
    return "failed" if order["send_error"] and not order["send_due_at"] else "sending"


def _dump(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


# --- escalations and cases ------------------------------------------------------------------------


@authority_app.command("escalations")
def escalations_command(
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Escalated items that no open case holds, by hoster."""
    from meldpunt.authority import cases

    with authority_session() as session:
        groups = [g.plain() for g in cases.escalations(session)]
    if output_format is Format.json:
        _dump(groups)
        return
    shown = table("Escalations by hoster")
    for column in ("hoster", "AS", "contact", "items", "ids"):
        shown.add_column(column)
    for g in groups:
        ids = ",".join(str(i["id"]) for i in g["items"][:20])
        shown.add_row(g["network_owner"] or "—", f"AS{g['asn']}" if g["asn"] else "—",
                      g["contact"] or "—", str(g["count"]),
                      ids + ("…" if g["count"] > 20 else ""))  # fmt: skip
    stdout().print(shown)


@authority_app.command("open")
def open_command(
    items: Annotated[str | None, typer.Option("--items", help="Escalated item ids: 12,13")] = None,
    url: Annotated[str | None, typer.Option("--url", help="A URL to report and take up")] = None,
    asn: Annotated[int | None, typer.Option("--asn", help="A hoster's AS number")] = None,
    contact: Annotated[int | None, typer.Option("--contact", help="An abuse contact's id")] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Open a case: from escalated items of one hoster, on a URL, or on a hoster."""
    from meldpunt.authority import cases

    with authority_session() as session:
        case = cases.open_case(session, actor=ACTOR, item_ids=_ids(items) if items else None,
                               url=url, asn=asn, contact_id=contact, title=title,
                               note=note)  # fmt: skip
        session.commit()
        print(f"case {case.ref} (id {case.id}) opened: {case.title}")


@authority_app.command("cases")
def cases_command(
    state: Annotated[str | None, typer.Option("--state", help="open or closed")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The cases, newest first."""
    from meldpunt.authority import cases

    with authority_session() as session:
        found = cases.list_cases(session, state=state, limit=limit)
    if output_format is Format.json:
        _dump(found)
        return
    shown = table("Cases")
    for column in ("id", "ref", "state", "hoster", "items", "opened"):
        shown.add_column(column)
    for c in found:
        hoster = c["network_owner"] or c["contact"] or (f"AS{c['asn']}" if c["asn"] else "—")
        shown.add_row(str(c["id"]), c["ref"], c["state"], hoster, str(c["items"]),
                      c["opened_at"][:16])  # fmt: skip
    stdout().print(shown)


@authority_app.command("case")
def case_command(case_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """One case as JSON: its items with their timelines, orders and fines."""
    from meldpunt.authority import cases

    with authority_session() as session:
        _dump(cases.get_case(session, case_id).plain())


@authority_app.command("close")
def close_command(
    case_id: Annotated[int, typer.Argument(min=1)],
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Close a case whose orders are all final."""
    from meldpunt.authority import cases

    with authority_session() as session:
        case = cases.close_case(session, case_id, actor=ACTOR, note=note)
        session.commit()
        print(f"case {case.ref} closed")


# --- orders ---------------------------------------------------------------------------------------


@authority_app.command("order")
def order_command(
    case_id: Annotated[int, typer.Argument(min=1, help="The case")],
    reasons: Annotated[str, typer.Option("--reasons", help="Why (required)")],
    items: Annotated[
        str | None, typer.Option("--items", help="A subset of the case's items")
    ] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="Until the deadline")] = None,
    basis: Annotated[str | None, typer.Option("--basis", help="The legal basis")] = None,
    penalty: Annotated[float | None, typer.Option("--penalty", help="Euros per period")] = None,
    period: Annotated[float | None, typer.Option("--period", help="Penalty period, hours")] = None,
    cap: Annotated[float | None, typer.Option("--cap", help="Penalty cap, euros")] = None,
    recipient: Annotated[str | None, typer.Option("--to", help="Another recipient")] = None,
    public: Annotated[bool, typer.Option("--public", help="Publish on /decisions")] = False,
) -> None:
    """Issue a removal order to the case's hoster (mailed by the worker)."""
    from meldpunt.authority import orders
    from meldpunt.config import get_settings

    with authority_session() as session:
        order = orders.issue_order(session, get_settings(), case_id=case_id, actor=ACTOR,
                                   reasons=reasons, item_ids=_ids(items) if items else None,
                                   hours=hours, legal_basis=basis, penalty_euros=penalty,
                                   penalty_period_hours=period, penalty_cap_euros=cap,
                                   recipient=recipient, public=public)  # fmt: skip
        session.commit()
        print(f"order {order.ref} (id {order.id}) issued to {order.recipient}; deadline "
              f"{order.deadline_at.isoformat()}")  # fmt: skip


@authority_app.command("orders")
def orders_command(
    status: Annotated[str | None, typer.Option("--status")] = None,
    order_id: Annotated[int | None, typer.Option("--id", help="One order in full (JSON)")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Orders with their status, deadline and penalty payments."""
    from meldpunt.authority import orders

    with authority_session() as session:
        if order_id is not None:
            _dump(orders.get_order(session, order_id))
            return
        found = orders.list_orders(session, status=status, limit=limit)
    if output_format is Format.json:
        _dump(found)
        return
    shown = table("Orders")
    for column in ("id", "ref", "status", "hoster", "deadline", "penalties", "delivered"):
        shown.add_column(column)
    for o in found:
        hoster = o["network_owner"] or (f"AS{o['asn']}" if o["asn"] else "—")
        shown.add_row(str(o["id"]), o["ref"], o["status"], hoster, o["deadline_at"][:16],
                      _euros(o["penalty_total_cents"]),
                      _delivery(o))  # fmt: skip
    stdout().print(shown)


@authority_app.command("withdraw")
def withdraw_command(
    order_id: Annotated[int, typer.Argument(min=1)],
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Withdraw a running order."""
    from meldpunt.authority import orders

    with authority_session() as session:
        order = orders.withdraw_order(session, order_id, actor=ACTOR, note=note)
        session.commit()
        print(f"order {order.ref} withdrawn")


# --- fines and records ----------------------------------------------------------------------------


@authority_app.command("fine")
def fine_command(
    reasons: Annotated[str, typer.Option("--reasons")],
    basis: Annotated[str, typer.Option("--basis", help="The legal basis")],
    amount: Annotated[float | None, typer.Option("--amount", help="Euros")] = None,
    share: Annotated[float | None, typer.Option("--share", help="Of the turnover, 0..1")] = None,
    case_id: Annotated[int | None, typer.Option("--case")] = None,
    asn: Annotated[int | None, typer.Option("--asn")] = None,
    contact: Annotated[int | None, typer.Option("--contact")] = None,
    public: Annotated[bool, typer.Option("--public")] = False,
) -> None:
    """Decide a fine: an amount, or a share of the hoster's recorded turnover."""
    from meldpunt.authority import fines
    from meldpunt.config import get_settings

    with authority_session() as session:
        fine = fines.impose_fine(session, get_settings(), actor=ACTOR, reasons=reasons,
                                 legal_basis=basis, amount_euros=amount, share=share,
                                 case_id=case_id, asn=asn, contact_id=contact,
                                 public=public)  # fmt: skip
        session.commit()
        print(f"fine {fine.ref} (id {fine.id}): {_euros(fine.amount_cents)}; objection until "
              f"{fine.objection_due_at.isoformat() if fine.objection_due_at else '—'}")  # fmt: skip


@authority_app.command("record")
def record_command(
    asn: Annotated[int, typer.Argument(min=1, max=2**32 - 1)],
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """A hoster's duty-of-care record: notices ignored, orders, penalties, fines."""
    from meldpunt.authority import records

    with authority_session() as session:
        record = records.hoster_record(session, asn)
    if output_format is Format.json:
        _dump(record.plain())
        return
    t = record.totals
    out = stdout()
    out.print(f"AS{record.asn} {record.name or ''}", highlight=False, markup=False)
    out.print(f"notified {t.notified}, ignored (escalated) {t.ignored}, re-notices "
              f"{t.renotices}, offline {t.offline}; orders {t.orders} "
              f"{dict(t.orders_by_status)}; penalties {t.penalties} ({_euros(t.penalty_cents)}); "
              f"fines {t.fines} ({_euros(t.fine_cents)} standing)",
              highlight=False, markup=False)  # fmt: skip
    shown = table("Timeline")
    for column in ("at", "what", "ref", "amount"):
        shown.add_column(column)
    for e in record.events:
        shown.add_row(e.at[:16], e.text, e.ref, _euros(e.amount_cents) if e.amount_cents else "")
    out.print(shown)


# --- hosters --------------------------------------------------------------------------------------


@hosters_app.command("load")
def hosters_load_command(
    file: Annotated[Path, typer.Argument(help="CSV: asn,name,addresses,customers,"
                                              "turnover_euros,turnover_year (- for stdin)")],
) -> None:  # fmt: skip
    """Load hoster facts. Bad lines are named with their number; the others are loaded."""
    from meldpunt.authority import hosters

    if str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            fail(f"{file} is not UTF-8 text (byte {exc.start + 1:,})")
    with authority_session() as session:
        result = hosters.load_csv(session, text.splitlines(), actor=ACTOR)
        session.commit()
    err = stderr()
    for number, why in result.problems[:100]:
        err.print(f"  line {number}: {why}", highlight=False, markup=False)
    if len(result.problems) > 100:
        err.print(f"  ... and {len(result.problems) - 100} more", highlight=False)
    print(f"{result.loaded} line(s) loaded, {len(result.problems)} bad")
    if result.problems and not result.loaded:
        raise typer.Exit(1)


@hosters_app.command("set")
def hosters_set_command(
    asn: Annotated[int, typer.Argument(min=1, max=2**32 - 1)],
    name: Annotated[str | None, typer.Option("--name")] = None,
    turnover: Annotated[float | None, typer.Option("--turnover", help="Yearly, euros")] = None,
    year: Annotated[int | None, typer.Option("--year", help="Of the turnover")] = None,
    addresses: Annotated[int | None, typer.Option("--addresses", min=0)] = None,
    customers: Annotated[int | None, typer.Option("--customers", min=0)] = None,
) -> None:
    """Record facts about a hoster (what is not given stays as it was)."""
    from meldpunt.authority import hosters

    with authority_session() as session:
        cents = None if turnover is None else hosters.euros_to_cents(turnover, "--turnover")
        facts = hosters.set_facts(session, asn, actor=ACTOR, name=name, turnover_cents=cents,
                                  turnover_year=year, addresses=addresses,
                                  customers=customers)  # fmt: skip
        session.commit()
        print(f"AS{facts.asn}: {facts.name or '—'}, turnover {_euros(facts.turnover_cents)}")


@hosters_app.command("list")
def hosters_list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 1000,
    output_format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The hosters with recorded facts."""
    from meldpunt.authority import hosters

    with authority_session() as session:
        rows: list[dict[str, Any]] = [
            {"asn": f.asn, "name": f.name, "addresses": f.addresses, "customers": f.customers,
             "turnover_cents": f.turnover_cents, "turnover_year": f.turnover_year}
            for f in hosters.list_facts(session, limit=limit)
        ]  # fmt: skip
    if output_format is Format.json:
        _dump(rows)
        return
    shown = table("Hosters")
    for column in ("AS", "name", "addresses", "customers", "turnover", "year"):
        shown.add_column(column)
    for r in rows:
        shown.add_row(f"AS{r['asn']}", r["name"] or "—", str(r["addresses"] or "—"),
                      str(r["customers"] or "—"), _euros(r["turnover_cents"]),
                      str(r["turnover_year"] or "—"))  # fmt: skip
    stdout().print(shown)

"""Fines (amounts, shares of a recorded turnover, the maxima), objection and appeal with their
outcomes and deadlines, hoster facts loaded from CSV, the duty-of-care record and the public
decisions, on SQLite and PostgreSQL with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meldpunt import clock as clock_module
from meldpunt.authority import fines, hosters, publication, records
from meldpunt.authority.errors import Conflict, InvalidInput, NotFound
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.store.models import AuditEvent, Order, Penalty
from notice_support import add_contact

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


def fine(session, settings, **terms):
    terms.setdefault("reasons", "Orders ignored for a year.")
    terms.setdefault("legal_basis", "Art. 2 of the act")
    return fines.impose_fine(session, settings, actor="authority:test", **terms)


def test_a_fine_as_a_share_of_turnover_up_to_the_maximum(session, settings, clock):
    hosters.set_facts(session, 64500, actor="t", name="Polder Hosting B.V.",
                      turnover_cents=250_000_000_00, turnover_year=2025)  # fmt: skip
    session.commit()
    found = fine(session, settings, asn=64500, share=0.04)
    assert found.amount_cents == 10_000_000_00 and found.final_cents == found.amount_cents
    assert found.turnover_cents == 250_000_000_00 and found.share == 0.04
    assert found.network_owner == "Polder Hosting B.V."
    assert found.objection_due_at == T0 + timedelta(days=42)
    for share in (0.0401, 0.5, 1.0, 0.0, -0.01, float("nan")):
        with pytest.raises(InvalidInput):
            fine(session, settings, asn=64500, share=share)
    with pytest.raises(InvalidInput, match="at most EUR 10,000,000.00"):
        fine(session, settings, asn=64500, amount_euros=10_000_000.01)
    assert fine(session, settings, asn=64500, amount_euros=10_000_000).amount_cents == 10**9
    with pytest.raises(InvalidInput, match="exactly one"):
        fine(session, settings, asn=64500, amount_euros=5, share=0.01)
    with pytest.raises(InvalidInput, match="exactly one"):
        fine(session, settings, asn=64500)


def test_without_turnover_a_fine_is_an_amount_up_to_the_setting(session, settings, clock):
    with pytest.raises(InvalidInput, match="no turnover"):
        fine(session, settings, asn=64501, share=0.01)
    cap = settings.authority_fine_max_euros
    assert fine(session, settings, asn=64501, amount_euros=cap).amount_cents == round(cap * 100)
    with pytest.raises(InvalidInput, match="authority_fine_max_euros"):
        fine(session, settings, asn=64501, amount_euros=cap + 1)
    for bad in (0, -1, float("inf"), "ten"):
        with pytest.raises(InvalidInput):
            fine(session, settings, asn=64501, amount_euros=bad)
    with pytest.raises(InvalidInput):
        fine(session, settings, asn=64501, amount_euros=5, reasons="a\x00b")
    with pytest.raises(InvalidInput):
        fine(session, settings, amount_euros=5)  # on whom?
    with pytest.raises(NotFound):
        fine(session, settings, case_id=10**9, amount_euros=5)


def test_objection_only_before_its_due_date_then_appeal(session, settings, clock):
    found = fine(session, settings, asn=64501, amount_euros=50_000)
    session.commit()
    with pytest.raises(Conflict, match="no objection"):
        fines.decide_objection(session, found.id, "upheld", actor="a")
    with pytest.raises(Conflict, match="follows the decision"):
        fines.record_appeal(session, found.id, actor="a")
    clock.advance(timedelta(days=42))  # the last moment
    fines.record_objection(session, found.id, actor="hoster", note="Too high.")
    with pytest.raises(Conflict, match="recorded already"):
        fines.record_objection(session, found.id, actor="hoster")
    with pytest.raises(InvalidInput, match="new amount"):
        fines.decide_objection(session, found.id, "reduced", actor="a")
    with pytest.raises(InvalidInput):
        fines.decide_objection(session, found.id, "reduced", actor="a", amount_euros=60_000)
    with pytest.raises(InvalidInput):
        fines.decide_objection(session, found.id, "maybe", actor="a")
    decided = fines.decide_objection(session, found.id, "reduced", actor="a", amount_euros=30_000)
    assert (decided.objection_outcome, decided.final_cents) == ("reduced", 3_000_000)
    assert decided.amount_cents == 5_000_000  # what was decided first stays
    fines.record_appeal(session, found.id, actor="hoster")
    appealed = fines.decide_appeal(session, found.id, "annulled", actor="court")
    assert (appealed.appeal_outcome, appealed.final_cents) == ("annulled", 0)
    with pytest.raises(Conflict):
        fines.decide_appeal(session, found.id, "upheld", actor="court")
    session.commit()
    actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions[-5:] == ["authority.fine_decided", "authority.fine_objection",
                            "authority.fine_objection_decided", "authority.fine_appeal",
                            "authority.fine_appeal_decided"]  # fmt: skip

    late = fine(session, settings, asn=64501, amount_euros=1000)
    session.commit()
    clock.advance(timedelta(days=42, seconds=1))
    with pytest.raises(Conflict, match="ended"):
        fines.record_objection(session, late.id, actor="hoster")


def test_hoster_facts_load_good_lines_and_name_bad_ones(session, clock):
    text = (
        "asn,name,addresses,turnover_euros,turnover_year\n"
        "64500,Polder Hosting B.V.,65536,2500000.50,2025\n"
        "AS64501,Dijk Cloud,,,\n"
        "notanumber,X,1,1,2025\n"
        "64502,Rhein,many,1,2025\n"
        "64503,Grachten,1,-5,2025\n"
        "64504,Kade,1,1,1066\n"
        "64505,Too,1,1,2025,extra\n"
        "0,Zero,1,1,2025\n"
    )
    result = hosters.load_csv(session, text.splitlines(), actor="t")
    session.commit()
    assert result.loaded == 2
    assert [n for n, _ in result.problems] == [4, 5, 6, 7, 8, 9]
    assert "AS number" in result.problems[0][1] and "addresses" in result.problems[1][1]
    polder = hosters.get_facts(session, 64500)
    assert (polder.name, polder.addresses, polder.turnover_cents, polder.turnover_year) == (
        "Polder Hosting B.V.", 65536, 250_000_050, 2025)  # fmt: skip
    assert hosters.get_facts(session, 64501).name == "Dijk Cloud"
    # a later load with fewer columns keeps what it does not name
    hosters.load_csv(session, ["asn,customers", "64500,1200"], actor="t")
    session.commit()
    polder = hosters.get_facts(session, 64500)
    assert (polder.customers, polder.addresses) == (1200, 65536)
    for header in ("name,asn", "asn,colour", "asn,name,name", ""):
        with pytest.raises(InvalidInput):
            hosters.load_csv(session, [header, "1,x"], actor="t")
    with pytest.raises(InvalidInput):
        hosters.set_facts(session, 64500, actor="t")
    with pytest.raises(InvalidInput):
        hosters.set_facts(session, 2**33, actor="t", name="x")
    with pytest.raises(InvalidInput):
        hosters.set_facts(session, 64500, actor="t", name="bad/name")


def test_the_duty_of_care_record_and_the_public_decisions(session, settings, clock):
    from meldpunt.authority import cases, orders
    from notice_support import ready_item

    contact = add_contact(session, "polder")
    urls = []
    for n in range(3):
        item = ready_item(session, f"http://site.test/{n}.jpg", contact, state="noticed")
        item.first_notice_at = clock_module.now()
        item.notice_asn, item.notice_owner = contact.asn, "polder B.V."
        item.renotices = n
        urls.append(item)
    urls[0].state, urls[0].escalated_at = "escalated", clock_module.now()
    session.commit()
    case = cases.open_case(session, actor="a", item_ids=[urls[0].id])
    order = orders.issue_order(session, settings, case_id=case.id, actor="a", reasons="R",
                               hours=1, public=True)  # fmt: skip
    session.add(Penalty(order_id=order.id, seq=1, due_at=order.deadline_at,
                        forfeited_at=order.deadline_at, amount_cents=100_000, asn=contact.asn,
                        network_owner="polder B.V."))  # fmt: skip
    session.get(Order, order.id).status = "unmet"
    quiet = fine(session, settings, asn=contact.asn, amount_euros=2000)
    fine(session, settings, asn=contact.asn, amount_euros=5000, public=True)
    session.commit()

    record = records.hoster_record(session, contact.asn)
    t = record.totals
    assert (t.notified, t.ignored, t.renotices, t.offline) == (3, 1, 3, 0)
    assert (t.orders, t.orders_by_status, t.penalties, t.penalty_cents) == (
        1, {"unmet": 1}, 1, 100_000)  # fmt: skip
    assert (t.fines, t.fine_cents) == (2, 700_000)
    assert [m.month for m in record.months] == ["2026-05"]
    assert [e.kind for e in record.events] == ["order_issued", "fine", "fine", "order_unmet",
                                               "penalty"]  # fmt: skip
    assert record.plain()["totals"]["notified"] == 3

    found, total = publication.public_decisions(session)
    assert total == 2 and sorted(d.kind for d in found) == ["fine", "order"]
    plain = [d.plain() for d in found]
    assert all("http" not in str(value) for d in plain for value in d.values())  # no URLs
    assert order.ref in {d["ref"] for d in plain} and quiet.ref not in {d["ref"] for d in plain}
    assert next(d for d in plain if d["kind"] == "order")["urls"] == 1
    fines.publish_fine(session, quiet.id, actor="a")
    session.commit()
    assert publication.public_decisions(session, limit=1)[1] == 3
    assert len(publication.public_decisions(session, limit=1, offset=2)[0]) == 1

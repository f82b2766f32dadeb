"""The authority's orders end to end on a frozen clock, with hosters on loopback answering real
HTTP re-checks and a real SMTP sink taking the mailed orders, on SQLite and PostgreSQL: orders of
1 and 12 hours met, missed and met late; penalty payments that accrue, wait for undecided URLs,
stop when the material is gone and stop at the cap; delivery retried when the relay fails;
acknowledgement; and the input an order refuses."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from authority_support import T0, AuthorityWorld, hours, minutes
from mail_sink import MailSink
from meldpunt.authority import cases, delivery, links, orders
from meldpunt.authority.errors import Conflict, InvalidInput, LinkExpired, NotFound, TooLarge
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import fetcher
from meldpunt.store.models import OrderItem
from meldpunt.takedown import asn, directory
from takedown_support import TABLE, Names, hosting, no_dns


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    monkeypatch.setattr(fetcher, "resolve", no_dns)


@pytest.fixture
def world(engine, session, settings, tmp_path):
    with use_clock(FrozenClock(T0)) as clock:
        asn.load_table(session, TABLE.splitlines(), "csv")
        directory.add_contact(session, "Polder", actor="t", asn=64500,
                              email="abuse@polder.test", approved=True)  # fmt: skip
        directory.add_contact(session, "Dijk", actor="t", asn=64501, email="abuse@dijk.test",
                              approved=True)  # fmt: skip
        session.commit()
        names = Names(tmp_path / "names")
        names.point("site.test", "127.0.0.5")
        names.point("other.test", "127.1.0.5")
        with (
            MailSink() as sink,
            hosting("127.0.0.5") as polder,
            hosting("127.1.0.5", polder.port) as dijk,
        ):
            yield AuthorityWorld(engine, session, settings, names, clock, polder, dijk, sink)


def open_and_order(world: AuthorityWorld, paths: list[str], **terms) -> tuple[list[int], int]:
    ids = world.escalated(paths)
    case = cases.open_case(world.session, actor="authority:test", item_ids=ids)
    terms.setdefault("reasons", "Child sexual abuse material, noticed and ignored.")
    order = orders.issue_order(world.session, world.settings, case_id=case.id,
                               actor="authority:test", **terms)  # fmt: skip
    world.session.commit()
    return ids, order.id


def test_a_one_hour_order_met_when_the_material_is_gone_by_the_deadline(world):
    ids, order_id = open_and_order(world, ["/a.jpg", "/b.jpg"], hours=1)
    order = world.order(order_id)
    assert order.deadline_at == T0 + hours(1) and order.status == "issued"
    assert order.check_at == order.deadline_at and order.next_penalty_at == order.deadline_at
    assert all(world.item(i).next_check_at <= order.deadline_at for i in ids)

    world.run()  # mailed at once
    (mail,) = world.orders_mailed()
    assert mail["To"] == "abuse@polder.test"
    assert mail["Message-ID"] == order.message_id
    body = mail.get_body(("plain",)).get_content()
    assert world.url("/a.jpg") in body and "2026-03-02 10:00:00 UTC" in body
    assert "11:00 CET" in body  # the deadline in local time too
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == f"order-{order.ref}.html"
    html = attachment.get_content()
    assert "Removal order" in html and world.url("/b.jpg") in html and "EUR 1,000.00" in html
    assert world.order(order_id).delivered_at == T0

    world.run(minutes(15))  # the first re-check after the notice: online
    assert world.item(ids[0]).next_check_at == T0 + hours(1)  # held at the deadline
    world.remove("/a.jpg")
    world.remove("/b.jpg")
    world.run(minutes(45))  # the deadline: both missed once (first seen gone at the deadline)
    assert world.order(order_id).status == "issued"  # undecided until the misses make it offline
    assert world.penalties(order_id) == []
    world.run_until(T0 + hours(1) + minutes(6), step=minutes(3))
    order = world.order(order_id)
    assert all(world.item(i).state == "offline" for i in ids)
    assert (order.status, order.gone_at) == ("met", T0 + hours(1))
    assert order.check_at is None and order.next_penalty_at is None
    assert order.penalty_total_cents == 0 and world.penalties(order_id) == []
    assert [a["ref"] for a in world.audited("authority.order_met")] == [order.ref]
    world.run(hours(48))
    assert world.order(order_id).status == "met" and world.penalties(order_id) == []


def test_a_twelve_hour_order_missed_accrues_penalties_up_to_the_cap(world):
    ids, order_id = open_and_order(world, ["/a.jpg"], penalty_euros=1000,
                                   penalty_cap_euros=2500)  # fmt: skip
    order = world.order(order_id)
    assert order.hours == 12 and order.deadline_at == T0 + hours(12)
    world.run()
    world.run_until(T0 + hours(12), step=hours(1))  # hourly re-checks: online throughout
    order = world.order(order_id)
    assert order.status == "unmet"
    (first,) = world.penalties(order_id)
    assert (first.seq, first.due_at, first.amount_cents, first.asn) == (
        1,
        T0 + hours(12),
        100_000,
        64500,
    )
    assert first.network_owner == "Polder Hosting B.V."
    assert order.next_penalty_at == T0 + hours(36) and order.penalty_total_cents == 100_000
    assert len(world.audited("authority.order_unmet")) == 1
    # the listed URL is re-checked at the next moment, whatever its own schedule
    world.run(hours(24))
    assert world.item(ids[0]).last_seen_at == T0 + hours(36)
    assert [p.amount_cents for p in world.penalties(order_id)] == [100_000, 100_000]
    world.run(hours(24))  # the third period: only what reaches the cap
    assert [p.amount_cents for p in world.penalties(order_id)] == [100_000, 100_000, 50_000]
    order = world.order(order_id)
    assert order.penalty_total_cents == 250_000 and order.next_penalty_at is None
    assert order.status == "unmet" and len(world.audited("authority.order_unmet")) == 1
    world.run(hours(72))
    assert len(world.penalties(order_id)) == 3  # the cap: no more
    world.remove("/a.jpg")
    world.run_until(world.clock.now() + hours(2), step=minutes(3))
    order = world.order(order_id)
    assert order.status == "late" and order.gone_at is not None
    assert order.penalty_total_cents == 250_000


def test_an_order_met_late_stops_the_penalties(world):
    ids, order_id = open_and_order(world, ["/a.jpg", "/b.jpg"], hours=1)
    world.run()
    world.remove("/a.jpg")
    world.run_until(T0 + hours(1), step=minutes(15))
    assert world.order(order_id).status == "unmet"
    assert len(world.penalties(order_id)) == 1
    world.run_until(T0 + hours(6), step=hours(1))
    world.remove("/b.jpg")
    world.run_until(T0 + hours(8), step=minutes(3))
    order = world.order(order_id)
    assert order.status == "late"
    assert order.gone_at == T0 + hours(7)  # first seen gone at the next hourly re-check
    assert order.next_penalty_at is None and order.check_at is None
    world.run(hours(100))
    assert (
        len(world.penalties(order_id)) == 1 and world.order(order_id).penalty_total_cents == 100_000
    )
    links_ = world.session.scalars(select(OrderItem).where(OrderItem.order_id == order_id))
    assert {link.item_id: link.gone_at for link in links_} == {
        ids[0]: T0 + minutes(15),
        ids[1]: T0 + hours(7),
    }


def test_a_penalty_waits_for_a_url_whose_misses_are_in_progress(world):
    ids, order_id = open_and_order(world, ["/a.jpg"], hours=1, penalty_period_hours=2)
    world.run()
    world.run_until(T0 + hours(1), step=minutes(15))
    assert len(world.penalties(order_id)) == 1
    world.run_until(T0 + hours(2) + minutes(50), step=minutes(10))
    world.remove("/a.jpg")
    world.run(minutes(10))  # period 2's moment: the first miss, exactly then
    assert world.item(ids[0]).gone_at == T0 + hours(3)
    assert len(world.penalties(order_id)) == 1  # not decided yet
    world.run_until(T0 + hours(3) + minutes(6), step=minutes(3))
    order = world.order(order_id)
    assert order.status == "late" and order.gone_at == T0 + hours(3)
    assert len(world.penalties(order_id)) == 1  # gone at its moment: not forfeited


def test_a_penalty_is_forfeited_when_misses_come_to_nothing(world):
    ids, order_id = open_and_order(world, ["/a.jpg"], hours=1, penalty_period_hours=2)
    world.run()
    world.run_until(T0 + hours(1), step=minutes(15))
    world.run_until(T0 + hours(2) + minutes(50), step=minutes(10))
    world.remove("/a.jpg")
    world.run(minutes(10))  # a miss at period 2's moment ...
    world.polder.pages["/a.jpg"] = world.dijk.pages["/a.jpg"]  # ... and it is back
    world.run_until(T0 + hours(3) + minutes(6), step=minutes(3))
    assert world.item(ids[0]).gone_at is None
    assert [p.seq for p in world.penalties(order_id)] == [1, 2]


def test_a_url_that_moves_to_another_hoster_is_gone_from_this_one(world):
    ids, order_id = open_and_order(world, ["/a.jpg"], hours=1)
    world.run()
    world.names.point("site.test", "127.1.0.5")  # now served by Dijk
    world.run_until(T0 + hours(1), step=minutes(15))
    order = world.order(order_id)
    assert order.status == "met"
    item = world.item(ids[0])
    assert item.asn == 64501 and item.state == "noticed"  # noticed to Dijk
    assert order.gone_at is not None and order.gone_at <= order.deadline_at


def test_delivery_is_retried_while_the_relay_fails_and_fails_visibly(world):
    _, order_id = open_and_order(world, ["/a.jpg"], hours=1)
    world.sink.answer = "451 4.3.0 try again later"
    world.run()
    order = world.order(order_id)
    assert order.delivered_at is None and order.send_attempts == 1
    assert order.send_due_at == T0 + minutes(5) and "451" in order.send_error
    message_id = order.message_id
    world.sink.answer = None
    world.run(minutes(5))
    (mail,) = world.orders_mailed()
    assert mail["Message-ID"] == message_id
    order = world.order(order_id)
    assert order.delivered_at == T0 + minutes(5) and order.send_error is None
    assert world.audited("authority.order_delivered")[0]["attempts"] == 2

    _, second = open_and_order(world, ["/b.jpg"], hours=1)
    world.sink.stop()  # nobody listens
    for wait in (0, 5, 10):
        world.run(minutes(wait))
    order = world.order(second)
    assert order.delivered_at is None and order.send_due_at is None
    assert order.send_attempts == 3 and order.send_error
    assert world.audited("authority.order_delivery_failed")[0]["ref"] == order.ref
    world.sink.start()
    delivery.resend(world.session, second, actor="authority:test")
    world.session.commit()
    world.run()
    assert world.order(second).delivered_at is not None


def test_the_signed_link_acknowledges_once(world):
    _, order_id = open_and_order(world, ["/a.jpg"], hours=1)
    world.run()
    (mail,) = world.orders_mailed()
    link = re.search(
        r"https://hotline\.example/order/(\S+)", mail.get_body(("plain",)).get_content()
    )
    assert link is not None
    assert links.read_token(b"k" * 32, link.group(1)) == order_id
    with pytest.raises(NotFound):
        links.read_token(b"k" * 32, link.group(1)[:-1] + "x")
    with pytest.raises(NotFound):
        links.read_token(b"other" * 8, link.group(1))
    with pytest.raises(LinkExpired):
        links.read_token(b"k" * 32, link.group(1), T0 + timedelta(days=91))
    orders.acknowledge(world.session, order_id, actor="link", via="link")
    orders.acknowledge(world.session, order_id, actor="again", via="link")
    world.session.commit()
    order = world.order(order_id)
    assert (order.acknowledged_at, order.acknowledged_by) == (T0, "link")
    assert len(world.audited("authority.order_acknowledged")) == 1


def test_an_order_refuses_what_it_cannot_be(world):
    ids = world.escalated(["/a.jpg", "/b.jpg"])
    case = cases.open_case(world.session, actor="a", item_ids=ids)
    world.session.commit()

    def issue(**terms):
        terms.setdefault("reasons", "Reasons.")
        return orders.issue_order(world.session, world.settings, case_id=case.id, actor="a",
                                  **terms)  # fmt: skip

    for hours_ in (13, 12.01, 0, -1, float("nan"), float("inf")):
        with pytest.raises(InvalidInput) as refused:
            issue(hours=hours_)
        assert refused.value.status == 400
    with pytest.raises(InvalidInput, match="at most 12 hours"):
        issue(hours=24)
    with pytest.raises(InvalidInput, match="reasons"):
        issue(reasons="  ")
    with pytest.raises(InvalidInput):
        issue(reasons="a\x00b")
    with pytest.raises(InvalidInput):
        issue(legal_basis="basis\x00")
    with pytest.raises(InvalidInput, match="not in case"):
        issue(item_ids=[ids[0], 999_999])
    with pytest.raises(TooLarge):
        issue(item_ids=list(range(1, 5000)))
    with pytest.raises(InvalidInput):
        issue(penalty_euros=-5)
    with pytest.raises(InvalidInput):
        issue(recipient="not an address")
    world.session.rollback()
    order = issue(item_ids=[ids[0]], hours=0.5)
    world.session.commit()
    with pytest.raises(Conflict, match="running order"):
        issue(item_ids=[ids[0]])
    world.session.rollback()
    orders.withdraw_order(world.session, order.id, actor="a")
    world.session.commit()
    with pytest.raises(Conflict):
        orders.withdraw_order(world.session, order.id, actor="a")
    world.session.rollback()
    world.run(hours(5))  # withdrawn: never evaluated, never mailed
    assert world.order(order.id).status == "withdrawn" and world.orders_mailed() == []
    assert world.penalties(order.id) == []


def test_a_case_is_about_one_hoster(world):
    polder = world.escalated(["/a.jpg"])
    dijk = world.escalated(["/d.jpg"], host="other.test")
    assert world.item(dijk[0]).asn == 64501
    with pytest.raises(InvalidInput, match="another hoster"):
        cases.open_case(world.session, actor="a", item_ids=[polder[0], dijk[0]])
    world.session.rollback()
    groups = cases.escalations(world.session)
    assert sorted((g.asn, [i.id for i in g.items]) for g in groups) == [
        (64500, polder),
        (64501, dijk),
    ]
    case = cases.open_case(world.session, actor="a", item_ids=polder)
    world.session.commit()
    assert [g.asn for g in cases.escalations(world.session)] == [64501]  # taken up
    with pytest.raises(Conflict, match="open case"):
        cases.open_case(world.session, actor="a", item_ids=polder)
    world.session.rollback()
    with pytest.raises(InvalidInput, match="another hoster"):
        cases.add_items(world.session, case.id, dijk, actor="a")
    world.session.rollback()
    more = world.noticed(["/c.jpg"])
    cases.add_items(world.session, case.id, more, actor="a")
    world.session.commit()
    view = cases.get_case(world.session, case.id)
    assert [i.id for i in view.items] == polder + more
    assert [line.event for line in view.items[0].timeline][-2:] == ["notice", "escalation_due"]
    assert view.asn == 64500 and view.contact == "Polder"
    with pytest.raises(NotFound):
        cases.get_case(world.session, 10**9)
    cases.close_case(world.session, case.id, actor="a")
    world.session.commit()
    with pytest.raises(Conflict):
        cases.add_items(world.session, case.id, more, actor="a")
    world.session.rollback()


def test_the_authority_opens_a_case_on_a_url_through_the_hotlines_intake(world):
    world.polder.pages["/x.jpg"] = (200, world.dijk.pages.get("/x.jpg", (200, b""))[1])
    case = cases.open_case(world.session, actor="authority:test", url=world.url("/x.jpg"))
    world.session.commit()
    view = cases.get_case(world.session, case.id)
    assert view.source == "authority" and len(view.items) == 1
    assert view.items[0].state == "received"  # the hotline fetches and grades it
    assert [line.event for line in view.items[0].timeline] == ["received"]
    hoster_case = cases.open_case(world.session, actor="a", asn=64500)
    world.session.commit()
    assert (hoster_case.asn, hoster_case.network_owner) == (64500, None)
    assert hoster_case.contact_id is not None
    with pytest.raises(InvalidInput):
        cases.open_case(world.session, actor="a")
    with pytest.raises(InvalidInput):
        cases.open_case(world.session, actor="a", asn=64500, url=world.url("/y.jpg"))
    world.session.rollback()


def test_a_twelve_hour_order_met_hours_before_its_deadline(world):
    ids, order_id = open_and_order(world, ["/a.jpg", "/b.jpg"])
    world.run()
    world.run_until(T0 + hours(5), step=hours(1))
    world.remove("/a.jpg")
    world.remove("/b.jpg")
    world.run_until(T0 + hours(6) + minutes(6), step=minutes(3))  # the 6 h check: misses
    assert all(world.item(i).state == "offline" for i in ids)
    assert world.order(order_id).status == "issued"  # judged at the deadline, not before
    world.run_until(T0 + hours(12), step=hours(1))
    order = world.order(order_id)
    assert (order.status, order.gone_at) == ("met", T0 + hours(6))
    assert world.penalties(order_id) == [] and order.penalty_total_cents == 0


def test_two_workers_decide_each_penalty_once(world):
    import threading

    from meldpunt import worker

    _, order_id = open_and_order(world, ["/a.jpg"], hours=1)
    world.run()
    world.run_until(T0 + hours(1) - minutes(1), step=minutes(15))
    world.clock.advance(minutes(1))
    world.session.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            worker.run_once(world.ctx)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert [p.seq for p in world.penalties(order_id)] == [1]
    assert len(world.audited("authority.order_unmet")) == 1
    assert len(world.audited("authority.penalty_forfeited")) == 1


def test_without_a_list_an_order_names_the_urls_not_ordered_yet(world):
    ids, first = open_and_order(world, ["/a.jpg"], hours=1)
    case_id = world.order(first).case_id
    more = world.escalated(["/b.jpg"])
    cases.add_items(world.session, case_id, more, actor="a")
    second = orders.issue_order(world.session, world.settings, case_id=case_id, actor="a",
                                reasons="The rest.")  # fmt: skip
    world.session.commit()
    listed = world.session.scalars(select(OrderItem.item_id).where(OrderItem.order_id == second.id))
    assert list(listed) == more
    with pytest.raises(InvalidInput, match="not in a running order"):
        orders.issue_order(world.session, world.settings, case_id=case_id, actor="a",
                           reasons="Again.")  # fmt: skip
    world.session.rollback()
    assert ids[0] not in more

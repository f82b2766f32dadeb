"""Re-checks of noticed items against real HTTP servers on loopback addresses, with a frozen
clock, on SQLite and PostgreSQL: misses and offline, changed content, errors that are no miss,
a hoster that changed, content that came back, escalation, and two workers at once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from imaging import jpeg, photo
from mail_sink import MailSink
from meldpunt import registry, worker
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import fetcher, items
from meldpunt.signals import digest_bytes, pdq_signal
from meldpunt.store.models import AuditEvent, UrlItem
from meldpunt.takedown import asn, directory, lifecycle
from meldpunt.takedown.attribution import run_attributions
from meldpunt.takedown.lifecycle import run_lifecycle
from takedown_support import TABLE, Names, context, hosting, mark_noticed, no_dns, ready_item

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PICTURE = jpeg(photo("coffee"))
RE_ENCODED = jpeg(photo("coffee"), quality=60)
OTHER = jpeg(photo("brick"))


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    monkeypatch.setattr(fetcher, "resolve", no_dns)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


class World:
    def __init__(self, engine, session, settings, names, clock, polder, dijk):
        self.engine, self.session, self.settings = engine, session, settings
        self.names, self.clock, self.polder, self.dijk = names, clock, polder, dijk
        self.ctx = context(engine, settings, names)

    def url(self, path: str, host: str = "site.test") -> str:
        return f"http://{host}:{self.polder.port}{path}"

    def noticed(self, path: str, host: str = "site.test", body: bytes = PICTURE) -> int:
        """An item of ``path`` served by Polder, attributed and noticed now."""
        return self.noticed_many([path], host, body)[0]

    def noticed_many(
        self, paths: list[str], host: str = "site.test", body: bytes = PICTURE
    ) -> list[int]:
        pdq = pdq_signal(body).hash
        ids = []
        for path in paths:
            self.polder.pages[path] = (200, body)
            ids.append(ready_item(self.session, self.url(path, host), body=body, pdq=pdq).id)
        self.session.commit()
        assert run_attributions(self.ctx, len(ids)) == len(ids)
        for item_id in ids:
            item = self.item(item_id)
            assert item.state == "ready" and item.asn == 64500, item.state
            mark_noticed(self.session, item, self.settings)
        self.session.commit()
        return ids

    def run(self, after: timedelta | None = None) -> int:
        if after is not None:
            self.clock.advance(after)
        self.session.commit()  # a transaction of the test's session would keep an old snapshot
        done = run_lifecycle(self.ctx, 50)
        self.session.commit()
        return done

    def item(self, item_id: int) -> UrlItem:
        self.session.commit()  # see what the workers committed since
        return self.session.get(UrlItem, item_id, populate_existing=True)

    def events(self, item_id: int) -> list[str]:
        return [e.event for e in items.timeline(self.session, item_id)]

    def details(self, item_id: int, event: str) -> dict:
        found = [e for e in items.timeline(self.session, item_id) if e.event == event]
        return json.loads(found[-1].details or "{}")


@pytest.fixture
def world(engine, session, settings, tmp_path, clock):
    asn.load_table(session, TABLE.splitlines(), "csv")
    directory.add_contact(session, "Polder", actor="t", asn=64500, email="abuse@polder.test",
                          approved=True)  # fmt: skip
    directory.add_contact(session, "Dijk", actor="t", asn=64501, email="abuse@dijk.test",
                          approved=True)  # fmt: skip
    session.commit()
    names = Names(tmp_path / "names")
    names.point("site.test", "127.0.0.5")
    with hosting("127.0.0.5") as polder, hosting("127.1.0.5", polder.port) as dijk:
        yield World(engine, session, settings, names, clock, polder, dijk)


def test_three_misses_at_least_three_minutes_apart_make_an_item_offline(world):
    item_id = world.noticed("/a.jpg")
    assert world.run() == 0  # the first check comes 15 minutes after the notice
    assert world.run(timedelta(minutes=15)) == 1
    item = world.item(item_id)
    assert (item.misses, item.last_seen_at) == (0, T0 + timedelta(minutes=15))
    assert item.next_check_at == T0 + timedelta(minutes=75)  # hourly after that
    assert world.events(item_id)[-1] == "notice"  # an online check leaves no line

    world.polder.pages["/a.jpg"] = (404, b"gone")
    world.run(timedelta(minutes=60))
    item = world.item(item_id)
    assert (item.state, item.misses, item.last_miss_at) == (
        "noticed",
        1,
        T0 + timedelta(minutes=75),
    )
    assert item.next_check_at == T0 + timedelta(minutes=78)
    assert world.details(item_id, "checked") == {"miss": 1, "why": "HTTP 404"}

    # a check one minute later (say, the hoster answered "removed"): a miss that does not count
    item.next_check_at = world.clock.now() + timedelta(minutes=1)
    world.session.commit()
    assert world.run(timedelta(minutes=1)) == 1
    item = world.item(item_id)
    assert item.misses == 1
    assert item.next_check_at == T0 + timedelta(minutes=78)  # when the next miss would count

    assert world.run(timedelta(minutes=2)) == 1
    assert world.item(item_id).misses == 2
    assert world.run(timedelta(minutes=2)) == 0  # not yet
    assert world.run(timedelta(minutes=1)) == 1
    item = world.item(item_id)
    assert item.state == "offline" and item.misses == 3
    assert item.offline_at == T0 + timedelta(minutes=81)
    assert item.open_key is None  # the URL can be reported again
    assert item.renotice_at is None and item.escalation_at is None
    assert item.next_check_at == item.offline_at + timedelta(hours=lifecycle.WATCH_HOURS)
    assert world.events(item_id)[-4:] == ["checked", "checked", "checked", "offline"]
    assert world.details(item_id, "offline")["misses"] == 3
    audited = [e.action for e in world.session.scalars(select(AuditEvent))]
    assert "hotline.offline" in audited and "hotline.checked" not in audited


def test_content_changed_is_a_miss_a_re_encoded_copy_is_not_and_5xx_is_neither(world):
    item_id = world.noticed("/b.jpg")
    world.polder.pages["/b.jpg"] = (200, RE_ENCODED)
    world.run(timedelta(minutes=15))
    item = world.item(item_id)
    assert item.misses == 0 and item.last_seen_at == world.clock.now()

    world.polder.pages["/b.jpg"] = (200, OTHER)  # another picture at the same address
    world.run(timedelta(hours=1))
    assert world.item(item_id).misses == 1
    assert "other content" in world.details(item_id, "checked")["why"]

    world.polder.pages["/b.jpg"] = (503, b"busy")
    world.run(timedelta(minutes=3))
    item = world.item(item_id)
    assert item.misses == 1 and item.state == "noticed"
    assert item.last_error == "HTTP 503"
    assert item.next_check_at == world.clock.now() + timedelta(minutes=5)

    world.polder.pages["/b.jpg"] = (200, PICTURE)
    world.run(timedelta(minutes=5))
    item = world.item(item_id)
    assert item.misses == 0 and item.last_miss_at is None and item.last_error is None


def test_refused_connections_and_names_gone_are_misses(world):
    refused = world.noticed("/c.jpg")
    world.names.point("gone.test", "127.0.0.5")
    gone = world.noticed("/d.jpg", host="gone.test")
    world.run(timedelta(minutes=15))
    world.polder.close()  # nothing listens on 127.0.0.5 any more
    world.names.point("gone.test", None)
    world.run(timedelta(hours=1))
    assert world.item(refused).misses == 1
    assert "connection refused" in world.details(refused, "checked")["why"]
    assert world.item(gone).misses == 1
    assert "name is gone" in world.details(gone, "checked")["why"]
    world.run(timedelta(minutes=3))
    world.run(timedelta(minutes=3))
    assert world.item(refused).state == "offline"
    assert world.item(gone).state == "offline"


def test_a_new_hoster_means_moved_and_a_new_attribution(world):
    item_id = world.noticed("/e.jpg")
    world.run(timedelta(minutes=15))
    # a new address of the same network and contact is only recorded
    with hosting("127.0.0.6", world.polder.port) as sibling:
        sibling.pages["/e.jpg"] = (200, PICTURE)
        world.names.point("site.test", "127.0.0.6")
        world.run(timedelta(hours=1))
    item = world.item(item_id)
    assert (item.state, item.ip, item.asn) == ("noticed", "127.0.0.6", 64500)
    assert "moved" not in world.events(item_id)

    world.dijk.pages["/e.jpg"] = (200, PICTURE)
    world.names.point("site.test", "127.1.0.5")  # now at Dijk Cloud
    world.run(timedelta(hours=1))
    item = world.item(item_id)
    assert item.state == "ready" and item.attributed_at is None
    assert item.due_at == world.clock.now()
    assert item.next_check_at is None and item.escalation_at is None
    moved = world.details(item_id, "moved")
    assert moved["from"]["asn"] == 64500 and moved["to"]["asn"] == 64501
    assert moved["to"]["contact_id"] == directory.get_contact(world.session, "Dijk").id
    assert run_attributions(world.ctx, 10) == 1
    item = world.item(item_id)
    assert item.state == "ready" and item.asn == 64501 and item.ip == "127.1.0.5"
    assert item.contact_id == directory.get_contact(world.session, "Dijk").id
    assert world.events(item_id)[-2:] == ["moved", "attributed"]


def test_moved_to_a_network_without_a_contact_needs_one(world):
    item_id = world.noticed("/f.jpg")
    with hosting("127.3.0.5", world.polder.port) as cdn:  # Grachten CDN: no contact yet
        cdn.pages["/f.jpg"] = (200, PICTURE)
        world.names.point("site.test", "127.3.0.5")
        world.run(timedelta(minutes=15))
        assert world.item(item_id).state == "ready"
        run_attributions(world.ctx, 10)
    item = world.item(item_id)
    assert item.state == "contact_needed" and item.asn == 64503


def test_content_that_returns_reopens_the_item(world, settings):
    item_id = world.noticed("/g.jpg")
    world.polder.pages["/g.jpg"] = (410, b"")
    for minutes in (15, 3, 3):
        world.run(timedelta(minutes=minutes))
    item = world.item(item_id)
    assert item.state == "offline"
    offline_at = item.offline_at

    world.run(timedelta(hours=5))  # still gone, not checked yet
    assert world.run(timedelta(hours=1)) == 1  # the watch: gone still
    assert world.item(item_id).state == "offline"
    world.polder.pages["/g.jpg"] = (200, PICTURE)  # put back
    world.run(timedelta(hours=6))
    item = world.item(item_id)
    now = world.clock.now()
    assert item.state == "noticed"
    assert item.open_key == item.url_key
    assert item.renotice_at == now  # a re-notice is due at once
    assert item.escalation_at == now + timedelta(hours=settings.takedown_escalation_hours)
    assert item.offline_at is None and item.misses == 0
    assert world.events(item_id)[-1] == "reopened"
    assert world.details(item_id, "reopened")["offline_at"] == offline_at.isoformat()


def test_returned_content_of_a_url_reported_again_is_linked(world):
    item_id = world.noticed("/h.jpg")
    world.polder.pages["/h.jpg"] = (404, b"")
    for minutes in (15, 3, 3):
        world.run(timedelta(minutes=minutes))
    url = world.item(item_id).url
    again, created = items.open_item(world.session, url, kind="csam", actor="public")
    assert created
    world.session.commit()
    world.polder.pages["/h.jpg"] = (200, PICTURE)
    world.run(timedelta(hours=6))
    item = world.item(item_id)
    assert item.state == "offline" and item.open_key is None and item.next_check_at is None
    assert world.details(item_id, "linked")["item"] == again.id


def test_offline_items_are_watched_for_a_week_only(world):
    item_id = world.noticed("/i.jpg")
    world.polder.pages["/i.jpg"] = (404, b"")
    for minutes in (15, 3, 3):
        world.run(timedelta(minutes=minutes))
    checks = 0
    for _ in range(int(lifecycle.WATCH_DAYS * 24 / lifecycle.WATCH_HOURS) + 4):
        checks += world.run(timedelta(hours=lifecycle.WATCH_HOURS))
    assert checks == int(lifecycle.WATCH_DAYS * 24 / lifecycle.WATCH_HOURS)
    assert world.item(item_id).next_check_at is None


def test_still_online_at_the_escalation_norm_escalates_on_time(world, settings):
    online = world.noticed("/j.jpg")
    gone = world.noticed("/k.jpg")
    world.polder.pages["/k.jpg"] = (404, b"")
    end = T0 + timedelta(hours=settings.takedown_escalation_hours)
    while world.clock.now() < end - timedelta(minutes=25):
        world.run(timedelta(minutes=25))
    assert world.item(online).state == "noticed"
    world.run(end - world.clock.now())
    item = world.item(online)
    assert item.state == "escalated" and item.escalated_at == end
    assert world.events(online)[-1] == "escalation_due"
    assert world.item(gone).state == "offline"
    # escalated items are still re-checked
    world.polder.pages["/j.jpg"] = (404, b"")
    for minutes in (60, 3, 3):
        world.run(timedelta(minutes=minutes))
    assert world.item(online).state == "offline"


def test_forwarded_items_are_re_checked(world):
    with hosting("127.2.0.5", world.polder.port) as rhein:
        rhein.pages["/l.jpg"] = (200, PICTURE)
        world.names.point("abroad.test", "127.2.0.5")
        item = ready_item(world.session, world.url("/l.jpg", "abroad.test"), body=PICTURE)
        world.session.commit()
        run_attributions(world.ctx, 10)
        assert world.item(item.id).state == "forwarded"
        assert world.run(timedelta(hours=1)) == 1
        assert world.item(item.id).last_seen_at == world.clock.now()
        rhein.pages["/l.jpg"] = (404, b"")
        for minutes in (60, 3, 3):
            world.run(timedelta(minutes=minutes))
    assert world.item(item.id).state == "offline"


def test_two_workers_never_re_check_one_item_at_once(world):
    paths = [f"/p{i}.jpg" for i in range(40)]
    ids = world.noticed_many(paths)
    world.polder.delay = 0.02
    world.clock.advance(timedelta(minutes=15))
    others = [context(world.engine, world.settings, world.names) for _ in range(2)]
    done = [0, 0]

    def work(n: int) -> None:
        while (count := run_lifecycle(others[n], 7)) > 0:
            done[n] += count

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(done) == len(ids)
    assert all(done), done  # both took part
    assert all(world.polder.hits[p] == 1 for p in paths), world.polder.hits
    assert max(world.polder.most_at_once.values()) == 1
    assert all(world.item(i).next_check_at == world.clock.now() + timedelta(hours=1) for i in ids)


def test_known_material_from_report_to_offline_through_the_worker(engine, session, settings,
                                                                  tmp_path, clock):  # fmt: skip
    """The worker's steps in their order: fetch and grade (a registry match), attribute, notice
    by mail, re-check until three misses make the item offline."""
    police = registry.create_set(session, "police", default_category="csam_baseline")
    registry.add_item(session, police, [("pdq", pdq_signal(PICTURE).hash),
                                        ("md5", digest_bytes(PICTURE).md5)])  # fmt: skip
    asn.load_table(session, TABLE.splitlines(), "csv")
    directory.add_contact(session, "Polder", actor="t", asn=64500, email="abuse@polder.test",
                          approved=True)  # fmt: skip
    session.commit()
    names = Names(tmp_path / "names")
    names.point("known.test", "127.0.0.5")
    with hosting("127.0.0.5") as polder, MailSink() as sink:
        polder.pages["/known.jpg"] = (200, PICTURE)
        ctx = context(engine, settings, names)
        ctx.relay = sink.relay
        url = f"http://known.test:{polder.port}/known.jpg"
        item, _ = items.open_item(session, items.normalise_url(url), kind="csam", actor="public")
        session.commit()
        worker.run_once(ctx)
        clock.advance(timedelta(seconds=settings.takedown_group_seconds))
        worker.run_once(ctx)
        (message,) = sink.wait_for(1)
        assert message["To"] == "abuse@polder.test"
        session.commit()
        row = session.get(UrlItem, item.id, populate_existing=True)
        assert row.state == "noticed" and row.asn == 64500
        clock.advance(timedelta(minutes=settings.takedown_first_check_minutes))
        worker.run_once(ctx)
        polder.pages["/known.jpg"] = (404, b"")
        for minutes in (60, 3, 3):
            clock.advance(timedelta(minutes=minutes))
            worker.run_once(ctx)
    session.commit()
    row = session.get(UrlItem, item.id, populate_existing=True)
    assert row.state == "offline"
    events = [e.event for e in items.timeline(session, item.id)]
    assert events == ["fetched", "graded", "attributed", "notice", "checked", "checked",
                      "checked", "offline"]  # fmt: skip

"""The simulated internet: hosters on loopback addresses, their name table, their behaviours on a
controlled clock, the mail sink and the tables they give meldpunt."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports.fetcher import (
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    NameTable,
    fetch,
    resolve_host,
)
from meldpunt.reports.smtp import Relay, send
from meldpunt.sim.behaviour import Behaviour, BehaviourKind, draw_behaviours
from meldpunt.sim.internet import Internet, address_of
from meldpunt.sim.mailsink import MailSink
from meldpunt.sim.pictures import PictureStore, generated_picture, sample_photos
from meldpunt.sim.simulation import Simulation
from meldpunt.sim.tables import POLICE_EMAIL, contacts
from meldpunt.store import make_engine
from meldpunt.store.models import AbuseContact, AsnPrefix, AuditEvent

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
B = BehaviourKind


def policy(net: Internet) -> FetchPolicy:
    return FetchPolicy(
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        names=NameTable(net.names_path),
        timeout_seconds=5,
        total_seconds=10,
    )


@pytest.fixture
def frozen():
    clock = FrozenClock(START)
    with use_clock(clock):
        yield clock


def make(tmp_path: Path, *kinds: Behaviour) -> Internet:
    return Internet(tmp_path / "sim", behaviours=list(kinds), seed=3, abroad=0.0)


def test_addresses_skip_the_usual_loopback_and_the_edges_of_each_block():
    assert address_of(1) == "127.0.0.2"
    assert address_of(253) == "127.0.0.254"
    assert address_of(254) == "127.0.1.1"
    found = {address_of(n) for n in range(1, 2001)}
    assert len(found) == 2000 and "127.0.0.1" not in found
    assert not any(a.endswith((".0", ".255")) for a in found)


def test_two_hosters_on_their_own_addresses_answer_by_host_and_path(tmp_path, frozen):
    with make(tmp_path, Behaviour(B.ignores), Behaviour(B.ignores)) as net:
        picture = net.add_picture(1, 0)  # the first bundled photo
        page, children = net.add_page(2, [7, 9])
        rules = policy(net)
        assert resolve_host("h1.sim.test", net.port, rules) == ["127.0.0.2"]
        assert resolve_host("h2.sim.test", net.port, rules) == ["127.0.0.3"]

        got = fetch(picture, rules)
        assert got.status == 200 and got.content_type == "image/jpeg"
        assert got.body == sample_photos()[0].body
        html = fetch(page, rules)
        assert html.status == 200 and html.content_type.startswith("text/html")
        for child, number in zip(children, [7, 9], strict=True):
            path = child.split(str(net.port), 1)[1]
            assert f'src="{path}"' in html.body.decode()
            assert fetch(child, rules).body == net.pictures.get(number).body
        # The other hoster does not serve h1's site, and unknown paths are 404.
        assert fetch(picture.replace("h1.", "h2."), rules).status == 404
        assert fetch(picture + "x", rules).status == 404
        assert net.answer(2, "h1.sim.test", "/") == (404, "text/plain", b"no such site here\n")
        assert net.requests[200] >= 4 and net.requests[404] >= 2


def test_a_fetch_outside_the_allowed_network_is_refused_even_in_the_simulation(tmp_path):
    with make(tmp_path, Behaviour(B.ignores)) as net:
        url = net.add_picture(1, 6)
        with pytest.raises(FetchRefused):
            fetch(url, FetchPolicy(names=NameTable(net.names_path)))


def test_a_hoster_that_removes_does_so_after_its_delay(tmp_path, frozen):
    with make(tmp_path, Behaviour(B.removes, delay_minutes=30)) as net:
        url = net.add_picture(1, 6)
        assert net.receive_notice(1, [url, "http://elsewhere.example/x"]) == [url]
        assert net.next_due() == START + timedelta(minutes=30)
        frozen.advance(timedelta(minutes=29))
        assert net.run_due() == []
        assert fetch(url, policy(net)).status == 200
        frozen.advance(timedelta(minutes=1))
        done = net.run_due()
        assert [(e.event, e.url) for e in done] == [("removed", url)]
        assert fetch(url, policy(net)).status == 404
        assert net.next_due() is None


def test_a_hoster_that_removes_some_removes_the_same_share_every_time(tmp_path, frozen):
    some = Behaviour(B.removes_some, delay_minutes=5, fraction=0.5)
    with make(tmp_path, some) as net:
        urls = [net.add_picture(1, n) for n in range(6, 46)]
        net.receive_notice(1, urls)
        frozen.advance(timedelta(minutes=5))
        net.run_due()
        gone = {u for u in urls if net.serving(u) is None}
        assert 8 <= len(gone) <= 32  # about half of 40
        net.receive_notice(1, urls, kind="renotice")  # asked again: no more removed
        frozen.advance(timedelta(hours=1))
        net.run_due()
        assert {u for u in urls if net.serving(u) is None} == gone


def test_a_hoster_that_ignores_keeps_everything(tmp_path, frozen):
    with make(tmp_path, Behaviour(B.ignores)) as net:
        url = net.add_picture(1, 8)
        net.receive_notice(1, [url])
        assert net.next_due() is None
        frozen.advance(timedelta(days=3))
        assert net.run_due() == [] and fetch(url, policy(net)).status == 200


def test_a_hoster_that_moves_points_its_name_at_another_hoster(tmp_path, frozen):
    mover = Behaviour(B.moves, delay_minutes=60, to=2)
    with make(tmp_path, mover, Behaviour(B.removes, delay_minutes=10)) as net:
        url = net.add_picture(1, 9)
        rules = policy(net)
        before = fetch(url, rules).body
        net.receive_notice(1, [url])
        frozen.advance(timedelta(hours=1))
        [event] = net.run_due()
        assert event.event == "moved" and event.details == {"host": "h1.sim.test", "to": "h2"}
        # The name table was rewritten whole: the name now points at hoster 2.
        table = net.names_path.read_text()
        assert "127.0.0.3 h1.sim.test" in table and "127.0.0.2 h1.sim.test" not in table
        assert resolve_host("h1.sim.test", net.port, rules) == ["127.0.0.3"]
        assert fetch(url, rules).body == before  # the same content, from the other hoster
        assert net.owner(url) == 2 and net.answer(1, "h1.sim.test", "/")[0] == 404
        # Its old hoster no longer acts on it; the new one does, by its own behaviour.
        assert net.receive_notice(1, [url]) == []
        assert net.receive_notice(2, [url]) == [url]
        frozen.advance(timedelta(minutes=10))
        net.run_due()
        assert fetch(url, rules).status == 404


def test_a_name_that_goes_leaves_the_name_table(tmp_path):
    with make(tmp_path, Behaviour(B.ignores), Behaviour(B.ignores)) as net:
        url = net.add_picture(2, 6)
        assert NameTable(net.names_path).lookup("h2.sim.test") == ["127.0.0.3"]
        net.drop_name("h2.sim.test")
        table = NameTable(net.names_path)
        assert table.lookup("h2.sim.test") is None and table.lookup("h1.sim.test") == ["127.0.0.2"]
        assert net.owner(url) is None and net.serving(url) is None
        assert net.answer(2, "h2.sim.test", urlsplit(url).path)[0] == 404


def test_a_hoster_that_goes_down_refuses_connections_for_a_while(tmp_path, frozen):
    down = Behaviour(B.down, delay_minutes=20, duration_minutes=120)
    with make(tmp_path, down) as net:
        url = net.add_picture(1, 10)
        net.receive_notice(1, [url])
        frozen.advance(timedelta(minutes=20))
        assert [e.event for e in net.run_due()] == ["down"]
        with pytest.raises(FetchFailed, match="(?i)refused"):
            fetch(url, policy(net))
        assert net.is_down(1) and net.serving(url) is None
        frozen.advance(timedelta(minutes=120))
        assert [e.event for e in net.run_due()] == ["up"]
        assert fetch(url, policy(net)).status == 200
        net.receive_notice(1, [url])  # once only
        assert net.next_due() is None


def test_a_hoster_that_puts_content_back_does_so_once(tmp_path, frozen):
    back = Behaviour(B.returns, delay_minutes=15, duration_minutes=600)
    with make(tmp_path, back) as net:
        url = net.add_picture(1, 11)
        net.receive_notice(1, [url])
        frozen.advance(timedelta(minutes=15))
        net.run_due()
        assert fetch(url, policy(net)).status == 404
        frozen.advance(timedelta(minutes=600))
        assert [e.event for e in net.run_due()] == ["restored"]
        assert fetch(url, policy(net)).status == 200
        net.receive_notice(1, [url])  # noticed again: removed for good
        frozen.advance(timedelta(days=5))
        assert [e.event for e in net.run_due()] == ["removed"]
        assert fetch(url, policy(net)).status == 404


def test_behaviours_are_drawn_from_the_seed_and_moves_go_to_a_hoster_that_removes():
    first, again, other = draw_behaviours(5, 300), draw_behaviours(5, 300), draw_behaviours(6, 300)
    assert first == again and first != other
    kinds = {b.kind for b in first}
    assert kinds == set(BehaviourKind)
    for behaviour in first:
        if behaviour.kind is B.moves:
            assert behaviour.to is not None and first[behaviour.to - 1].kind is B.removes


def test_generated_pictures_are_the_same_bytes_every_time_and_differ_by_number():
    a, b = generated_picture(1, 10), generated_picture(1, 10)
    assert a.body == b.body and a.content_type == "image/jpeg"
    assert generated_picture(1, 11).body != a.body and generated_picture(2, 10).body != a.body
    assert generated_picture(1, 14).content_type == "image/png"
    store = PictureStore(1, capacity=2)
    digests = [store.digest(n) for n in (10, 11, 12, 10)]
    assert digests[0] == digests[3]  # made again after it left the cache: the same bytes


def notice(to: str, urls: list[str], *, message_id: str, csv: bool = True) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "meldpunt@localhost"
    message["To"] = to
    message["Subject"] = "Notice of illegal content"
    message["Message-ID"] = message_id
    answer = "http://127.0.0.1:8000/answer/abc"
    message.set_content("Please remove:\n" + "\n".join(urls) + f"\n\nAnswer: {answer}\n")
    if csv:
        rows = ["url;ip;firstseen;lastseen;note"] + [f"{u};127.0.0.2;;;csam" for u in urls]
        message.add_attachment(
            "\n".join(rows).encode(), maintype="text", subtype="csv", filename="urls.csv"
        )
    return message


def test_the_mail_sink_hands_a_notice_to_its_hoster_and_drops_duplicates(tmp_path, frozen):
    with make(tmp_path, Behaviour(B.removes, delay_minutes=45), Behaviour(B.ignores)) as net:
        sink = MailSink(net, police=(POLICE_EMAIL,))
        with sink:
            urls = [net.add_picture(1, n) for n in (20, 21)]
            relay = Relay("127.0.0.1", sink.port, timeout_seconds=10)
            assert send(notice("abuse@h1.sim.test", urls, message_id="<n1@m>"), relay) == []
            send(notice("abuse@h1.sim.test", urls, message_id="<n1@m>"), relay)  # again
            send(notice(POLICE_EMAIL, urls[:1], message_id="<p1@m>"), relay)
            send(notice("abuse@h1.sim.test", urls, message_id="<n2@m>", csv=False), relay)
            send(notice("someone@else.example", urls, message_id="<x@m>"), relay)

            first, police, second, other = sink.received
            assert (first.message_id, first.kind, first.hoster) == ("<n1@m>", "notice", "h1")
            assert first.urls == tuple(urls) and first.ours == tuple(urls)
            assert first.at == START
            assert (police.kind, police.hoster, police.urls) == ("police", None, (urls[0],))
            # Without the CSV the body's URLs count, but not the link back to meldpunt.
            assert (second.kind, second.urls) == ("renotice", tuple(urls))
            assert other.kind == "other"
            assert sink.duplicates == 1 and sink.unknown == 1
            assert sink.by_kind() == {"notice": 1, "police": 1, "renotice": 1, "other": 1}

            frozen.advance(timedelta(minutes=45))
            assert sorted(e.url for e in net.run_due() if e.event == "removed") == sorted(urls)
            assert all(fetch(u, policy(net)).status == 404 for u in urls)


def test_a_thousand_hosters_start_and_stop_quickly(tmp_path):
    from meldpunt.clock import perf

    begun = perf()
    net = Internet(tmp_path / "sim", hosters=1000, seed=1)
    net.start()
    try:
        started = perf() - begun
        url = net.add_picture(1000, 0)
        assert fetch(url, policy(net)).status == 200
        assert resolve_host("h1000.sim.test", net.port, policy(net)) == [address_of(1000)]
        assert len(net.names_path.read_text().splitlines()) == 1001  # a comment, 1000 names
    finally:
        net.stop()
    assert started < 10 and perf() - begun < 20
    # Stopped: nothing listens any more.
    with pytest.raises(FetchFailed):
        fetch(url, policy(net))


def test_answers_may_wait_as_over_a_real_network_without_holding_each_other(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from meldpunt.clock import perf

    with Internet(tmp_path / "sim", hosters=2, seed=1, latency_ms=300) as net:
        urls = [net.add_picture(1 + i % 2, 0) for i in range(8)]
        rules = policy(net)
        begun = perf()
        assert fetch(urls[0], rules).status == 200
        one = perf() - begun
        begun = perf()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda u: fetch(u, rules).status, urls))
        eight = perf() - begun
        net.latency_ms = 0
        begun = perf()
        assert fetch(urls[1], rules).status == 200
        none = perf() - begun
        with pytest.raises(ValueError):
            net.latency_ms = -1
    assert statuses == [200] * 8
    assert one >= 0.3 and eight < 4 * 0.3  # eight at once wait together, not one after another
    assert none < 0.3


def test_the_simulation_writes_settings_and_loads_its_tables(tmp_path, db_url):
    engine = make_engine(db_url)
    from meldpunt.store import init_db

    init_db(db_url)
    with Simulation(tmp_path / "sim", seed=4, hosters=60, abroad=0.2) as sim:
        settings = sim.settings()
        assert settings["fetch_allow_networks"] == ["127.0.0.0/8"]
        assert settings["smtp_port"] == sim.sink.port and Path(settings["resolver_hosts_file"])
        hints = (tmp_path / "sim" / "meldpunt-sim.toml").read_text()
        assert f"smtp_port = {sim.sink.port}" in hints
        assert (
            f"MELDPUNT_SMTP_PORT='{sim.sink.port}'"
            in (tmp_path / "sim" / "meldpunt-sim.env").read_text()
        )
        assert sim.files is not None
        assert sim.files.asn.read_text().splitlines()[0] == "start,end,asn,org,country"
        wanted = contacts(sim.internet)
        for _ in range(2):  # loading again replaces, never doubles
            with Session(engine) as session, session.begin():
                assert sim.load_tables(session) == (60, len(wanted))
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(AsnPrefix)) == 60
            row = session.scalars(select(AsnPrefix).where(AsnPrefix.prefix == "127.0.0.2/32")).one()
            assert row.asn == sim.internet.hosters[1].asn and row.org == "Sim Hosting 1"
            assert row.country == sim.internet.hosters[1].country
            found = list(session.scalars(select(AbuseContact)))
            assert len(found) == len(wanted)
            police = [c for c in found if c.kind == "police"]
            assert [(c.email, c.approved) for c in police] == [(POLICE_EMAIL, True)]
            hosters = [c for c in found if c.kind == "hoster"]
            expected = {
                c.email: (c.approved, c.asn, c.country) for c in wanted if c.kind == "hoster"
            }
            assert {c.email: (c.approved, c.asn, c.country) for c in hosters} == expected
            assert {c.country for c in hosters} - {"NL"}  # some abroad, for forwards
            assert all(c.email == f"abuse@h{c.asn - 4_200_000_000}.sim.test" for c in hosters)
            # Through meldpunt's own loaders, so audited as an operator's load would be.
            actions = set(session.scalars(select(AuditEvent.action)))
            assert {"takedown.asn_table.loaded", "takedown.contact.added"} <= actions
    engine.dispose()


def test_the_directory_has_unapproved_and_missing_contacts_to_exercise_contact_needed(tmp_path):
    net = Internet(tmp_path, hosters=1000, seed=8)
    found = [c for c in contacts(net) if c.kind == "hoster"]
    unapproved = sum(not c.approved for c in found)
    assert 900 < len(found) < 995  # about 3% have none
    assert 20 < unapproved < 90  # about 5% are not approved
    assert contacts(net) == contacts(Internet(tmp_path, hosters=1000, seed=8))


def test_a_plan_goes_round_the_hosters_and_may_bound_its_pictures(tmp_path):
    from meldpunt.sim.plan import NEW_PICTURES, make_plan

    with make(tmp_path, *[Behaviour(B.ignores)] * 4) as net:
        plan = make_plan(net, seed=1, urls=40, start=START, tag="t", page_share=0.0,
                         report_hours=1.0, pictures=3)  # fmt: skip
        reported = plan.reported()
        assert len(reported) == 40 and {u.hoster for u in reported} == {1, 2, 3, 4}
        assert set(plan.known_pictures) <= {0, 1, 2}
        new = {u.picture for u in reported if not u.known}
        assert new and new <= {NEW_PICTURES, NEW_PICTURES + 1, NEW_PICTURES + 2}
        assert sum(len(r.urls) for r in plan.reports) == 40
        assert all(START <= r.at <= START + timedelta(hours=1) for r in plan.reports)
        again = make_plan(net, seed=1, urls=40, start=START, tag="u", page_share=0.0)
        assert len({u.picture for u in again.reported()}) == 40  # unbounded: one each

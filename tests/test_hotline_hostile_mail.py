"""Notices and hosters' answers against hostile input: names and addresses that would rewrite a
message's headers, relays that stall or hang up in the middle of a message, tampered, replayed
and foreign answer links, notes no form allows. Over real SMTP on loopback, on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from mail_sink import MailSink
from meldpunt import checks, clock
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.smtp import Relay
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.takedown import directory
from meldpunt.takedown.answers import sign_token
from meldpunt.takedown.notices import run_notices
from notice_support import MONDAY, add_contact, context_for, fresh, notices_of, ready_item
from service import running
from test_api_text import a_notice


@pytest.fixture
def sessions(db_url, settings):
    init_db(db_url)
    engine = make_engine(db_url)
    with use_clock(FrozenClock(MONDAY)):
        yield make_sessionmaker(engine)
    engine.dispose()


# --- who a notice is from and to ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["EOKM: Meldpunt Kinderporno", "Meld, punt <other@elsewhere.example>",
     "Meldpunt\r\nBcc: other@elsewhere.example", "Meldpünt — ‘Ünïcode’"],
)  # fmt: skip
def test_a_hotline_name_stays_a_name_in_the_from_header(sessions, settings, name):
    """The From header was the name and the address pasted together as text: a colon made the
    name a group, a comma and angle brackets a second sender, so notices went out "from"
    another address, or (with a ';') not at all."""
    with MailSink() as sink:
        context = context_for(sessions, settings, sink.relay, hotline_name=name)
        with sessions() as s:
            ready_item(s, "http://a.example/1.jpg", add_contact(s, "hoster-a", group_seconds=0))
            s.commit()
        run_notices(context, 50)
        (message,) = sink.wait_for(1)
        (sender,) = sink.envelopes
    (shown,) = message["From"].addresses
    assert (shown.addr_spec, sender[0]) == ("notices@hotline.example",) * 2
    assert shown.display_name == " ".join(name.replace("\r\n", " ").split())
    assert "\n" not in str(message["Subject"]) and str(message["Subject"]).endswith("[notice 1]")


@pytest.mark.parametrize(
    "email", ["a:b;@hoster.example", "abuse@hoster.example,noc@elsewhere.example",
              "abuse@hoster.example;", "abuse@hoster.example>", "a,b@hoster.example",
              "abuse@hoster.example\r\nBcc: x@y.example"],
)  # fmt: skip
def test_a_contact_address_that_is_not_one_plain_address_is_refused(sessions, email):
    with sessions() as s, pytest.raises(InvalidInput, match="e-mail address|control"):
        directory.add_contact(s, "desk", email=email, asn=64500, actor="test")


def test_a_notice_that_cannot_be_composed_fails_and_holds_no_other_notice(sessions, settings):
    """A contact's address the directory once let in ('a:b;@x': a group of nobody) made the
    email package raise AttributeError, which ended the notices step: the notice stayed leased,
    came back first in the next batch, and the notices after it never went out."""
    with MailSink() as sink:
        context = context_for(sessions, settings, sink.relay)
        with sessions() as s:
            broken = add_contact(s, "broken", email="a:b;@hoster.example", group_seconds=0)
            wide = add_contact(s, "wide", email="üser@hoster.example", group_seconds=0)
            fine = add_contact(s, "fine", group_seconds=0)
            for n, contact in enumerate((broken, wide, fine)):
                ready_item(s, f"http://{contact.name}.example/{n}.jpg", contact)
            s.commit()
        run_notices(context, 50)
        (message,) = sink.wait_for(1)
    assert message["To"] == "abuse@fine.example"
    with sessions() as s:
        failed = [n for n in notices_of(s) if n.status == "failed"]
        assert len(failed) == 2 and all("could not be composed" in n.last_error for n in failed)
        assert all(n.attempts == 1 for n in failed)  # for good at once: retrying cannot help


# --- relays that stall or hang up -----------------------------------------------------------------


@contextmanager
def hostile_relay(behaviour: str) -> Iterator[Relay]:
    """An SMTP server on loopback that takes a message up to its DATA, then ``hangs-up`` in the
    middle of it or ``stalls`` (answers nothing more)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 relay.example ESMTP\r\n")
            for raw in lines:
                command = raw.strip().upper()
                if command.startswith((b"EHLO", b"HELO")):
                    conn.sendall(b"250 relay.example\r\n")
                elif command.startswith((b"MAIL", b"RCPT")):
                    conn.sendall(b"250 OK\r\n")
                elif command == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    lines.readline()  # the first line of the message, then:
                    if behaviour == "stalls":
                        stop.wait(10)
                    return  # hang up in the middle of the message
                else:
                    conn.sendall(b"502 no\r\n")

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Relay("127.0.0.1", port, timeout_seconds=1)
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("behaviour", ["hangs-up", "stalls"])
def test_a_relay_that_hangs_up_or_stalls_mid_message_gets_the_notice_again_later(
    sessions, settings, behaviour
):
    with hostile_relay(behaviour) as relay:
        context = context_for(sessions, settings, relay)
        with sessions() as s:
            item = ready_item(
                s, "http://a.example/1.jpg", add_contact(s, "hoster", group_seconds=0)
            )
            s.commit()
        run_notices(context, 50)
    with sessions() as s:
        (notice,) = notices_of(s)
        assert (notice.status, notice.attempts, notice.sent_at) == ("open", 1, None)
        assert notice.due_at == clock.now() + timedelta(minutes=5) and notice.last_error
        assert fresh(s, item).state == "ready"  # never noticed by a message that did not arrive
        message_id = notice.message_id
    with MailSink() as sink:
        context = context_for(sessions, settings, sink.relay)
        clock.get_clock().advance(timedelta(minutes=5))  # type: ignore[attr-defined]
        run_notices(context, 50)
        (message,) = sink.wait_for(1)
    assert message["Message-ID"] == message_id
    with sessions() as s:
        assert fresh(s, notice).status == "sent" and fresh(s, item).state == "noticed"


# --- hosters' answers -----------------------------------------------------------------------------


def test_answer_links_and_the_answer_api_against_tampering_replay_and_notes_no_form_allows(
    db_url, settings
):
    """The page behind the link takes what a form sends: a note over its length or with a
    control character was a server error (the text rule's TextError), not a clear answer."""
    with running(db_url, run_worker=False) as world:
        key, notice_id = a_notice(world)
        with world.session() as s:
            checks.create_org(s, "hoster-b", "hoster")
            _, other_key = checks.create_key(s, "hoster-b", "hoster")
            s.commit()
        link_key = world_link_key(settings)
        token = sign_token(link_key, notice_id, clock.now() + timedelta(days=1))
        page = world.client(None, follow_redirects=False)
        (item,) = re.findall(r'name="item" value="(\d+)"', page.get(f"/notice/{token}").text)
        for note in ("x" * 2001, "nul\x00", "esc\x1b", "n\x85el"):
            answer = page.post(f"/notice/{token}", data={"item": item, "answer": "other",
                                                         "note": note})  # fmt: skip
            assert answer.status_code == 400, (note[:5], answer.status_code)
            assert "text/html" in answer.headers["content-type"] and "the note on" in answer.text
        general = page.post(f"/notice/{token}", data={"item": item, "answer": "",
                                                      "note": "", "general": "a\x00"})  # fmt: skip
        assert general.status_code == 400 and "NUL" in general.text

        # Tampered, forged for another notice, replayed after its expiry.
        number, stamp, signature = token.split(".")
        for forged in (f"{number}.{stamp}.{signature[:-2]}AA",
                       f"{int(number) + 1}.{stamp}.{signature}",
                       f"{number}.{int(stamp) + 86400}.{signature}", "1" * 5000):  # fmt: skip
            assert page.get(f"/notice/{forged}").status_code == 404
        expired = sign_token(link_key, notice_id, clock.now() - timedelta(seconds=1))
        assert page.get(f"/notice/{expired}").status_code == 410
        assert page.post(f"/notice/{expired}", data={"item": item, "answer": "removed",
                                                     "note": ""}).status_code == 410  # fmt: skip

        hoster = world.client(None, headers={"Authorization": f"Bearer {key}"})
        other = world.client(None, headers={"Authorization": f"Bearer {other_key}"})
        url = "http://hoster.example/1.jpg"
        foreign = {"answers": [{"url": url, "answer": "removed"}]}
        assert other.post(f"/v1/notices/{notice_id}/answer", json=foreign).status_code == 403
        too_long = hoster.post(f"/v1/notices/{notice_id}/answer", json={"note": "x" * 10_000_000})
        assert too_long.status_code in (413, 422), too_long.status_code
        with world.session() as s:
            from meldpunt.store.models import Notice

            assert s.get(Notice, notice_id).answer is None  # nothing of all that was recorded
        fine = page.post(f"/notice/{token}", data={"item": item, "answer": "other",
                                                   "note": "kept for the police"})  # fmt: skip
        assert fine.status_code == 303


def world_link_key(settings) -> bytes:
    from meldpunt.reports.context import link_secret

    return link_secret(settings)

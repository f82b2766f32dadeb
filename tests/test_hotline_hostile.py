"""The hotline against hostile input: hosters that serve traps to the worker, and reporters,
flaggers and hosters that send what no form expects. Bad input gets a clear error and loses
nothing, one caller never makes another's request fail, memory and time per request are bounded.

Hosters are real HTTP servers on 127.0.0.2 (``loopback_web``); every test that touches the
database runs on SQLite and PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import struct
import time
import zlib
from datetime import timedelta

import pytest

from loopback_web import send, serve
from meldpunt import registry
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.reports import links
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.reports.grading import run_fetches
from meldpunt.signals import digest_bytes, pdq_signal
from test_reports_grading import KNOWN, NEW, T0, context_of, events_of, item_of, picture, report


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture
def known_set(session):
    police = registry.create_set(session, "police", default_category="csam_baseline")
    registry.add_item(
        session, police, [("pdq", pdq_signal(KNOWN).hash), ("md5", digest_bytes(KNOWN).md5)]
    )
    session.commit()


def page(text: str, content_type: str = "text/html; charset=utf-8"):
    return lambda h: send(h, 200, text.encode("utf-8"), Content_Type=content_type)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header says ``width`` x ``height``: a decompression
    bomb as far as any decoder that trusts the header is concerned."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9)) + chunk(b"IEND", b""))  # fmt: skip


def gif_header_only(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b";"


# --- hosters that serve traps ---------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["zlib", "base64", "rot13", "idna", "undefined"])
def test_a_page_whose_charset_is_no_text_encoding_is_read_as_utf8_and_holds_no_batch(
    engine, session, settings, clock, charset
):
    """A charset that names a codec of bytes to bytes (or one that refuses errors="replace")
    made the page's parse raise, which ended the whole batch: every item in it waited for its
    lease to end, and met the same page again when it did."""
    routes = {
        "/page": page('<html><img src="/a.jpg"></html>', f"text/html; charset={charset}"),
        "/new.jpg": picture(NEW),
    }
    with serve("127.0.0.2", routes) as (base, _):
        page_id, picture_id = report(session, f"{base}/page", f"{base}/new.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 2
    assert item_of(session, picture_id).state == "queued"
    assert item_of(session, page_id).state == "queued"  # a page with a picture: for analysts
    fetched = dict(events_of(session, page_id))["fetched"]
    assert (fetched["children"], fetched["links"]) == (1, 1)


def test_a_surprise_while_examining_one_item_does_not_hold_the_others(
    engine, session, settings, clock, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the page parser")

    monkeypatch.setattr("meldpunt.reports.grading.media_links", broken)
    routes = {"/page": page('<html><img src="/a.jpg"></html>'), "/new.jpg": picture(NEW)}
    with serve("127.0.0.2", routes) as (base, _):
        page_id, picture_id = report(session, f"{base}/page", f"{base}/new.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 2
    assert item_of(session, picture_id).state == "queued"
    troubled = item_of(session, page_id)
    assert (troubled.state, troubled.attempts) == ("received", 1)  # tried again later
    assert troubled.due_at > T0 and "RuntimeError" in troubled.last_error


def test_markup_that_html_parser_takes_quadratic_time_over_is_parsed_at_once(
    engine, session, settings, clock
):
    """``html.parser``'s ``close()`` hands over an unfinished ``</`` one character at a time,
    each time searching the rest of the page for a ``>``: a 400 kB page took a quarter of a
    minute of CPU (2 MB, the parser's limit: minutes), holding a fetch thread and the GIL."""
    hostile = '<html><img src="/first.jpg">' + "</" * 200_000
    split_tags = '<html><img src="/second.jpg"><a ' + "b=c " * 500_000  # an endless tag
    routes = {"/slashes": page(hostile), "/tag": page(split_tags)}
    with serve("127.0.0.2", routes) as (base, _):
        ids = report(session, f"{base}/slashes", f"{base}/tag")
        started = time.perf_counter()
        assert run_fetches(context_of(engine, settings), 10) == 2
        assert time.perf_counter() - started < 5
    for item_id in ids:
        fetched = dict(events_of(session, item_id))["fetched"]
        assert fetched["children"] == 1, fetched


def test_one_broken_link_does_not_end_the_pages_parse():
    body = b'<html><a href="http://[/x.jpg">broken</a><img src="/ok.jpg"></html>'
    assert links.media_links(body, "text/html", "http://pages.example/p", 10) == [
        "http://pages.example/ok.jpg"
    ]


def test_a_page_of_a_million_links_nested_tags_and_links_to_itself_and_inside_the_network(
    engine, session, settings, clock
):
    many = "<html>" + "".join(f'<img src="/p/{n}.jpg">' for n in range(100_000))
    nested = "<html>" + "<div>" * 200_000 + '<img src="/deep.jpg">' + "</div>" * 200_000
    itself = '<html><img src="/itself"><img src="/itself#top"><a href="/itself">x</a></html>'
    inside = '<html><img src="http://10.1.2.3/a.jpg"><img src="http://[fd00::1]/b.jpg"></html>'
    routes = {"/many": page(many), "/nested": page(nested), "/itself": page(itself),
              "/inside": page(inside)}  # fmt: skip
    with serve("127.0.0.2", routes) as (base, _):
        ids = report(session, *(f"{base}/{p}" for p in ("many", "nested", "itself", "inside")))
        context = context_of(engine, settings, hotline_max_children=20)
        assert run_fetches(context, 10) == 4
        many_id, nested_id, itself_id, inside_id = ids
        assert dict(events_of(session, many_id))["fetched"]["children"] == 20  # capped
        assert dict(events_of(session, nested_id))["fetched"]["children"] == 1
        alone = item_of(session, itself_id)
        assert alone.state == "ignored"  # no media: it never became its own child
        assert run_fetches(context, 50) >= 2
    children = dict(events_of(session, inside_id))["fetched"]["children"]
    assert children == 2
    from sqlalchemy import select

    from meldpunt.store.models import UrlItem

    session.rollback()
    refused = session.scalars(select(UrlItem).where(UrlItem.parent_id == inside_id)).all()
    assert {(r.state, "inside the network" in (r.last_error or "")) for r in refused} == {
        ("failed", True)
    }


@pytest.mark.parametrize(
    "bomb", [png_header_only(20_000, 20_000), gif_header_only(65_535, 65_535)], ids=["png", "gif"]
)
def test_a_decompression_bomb_is_refused_before_decoding_and_the_item_waits_for_analysts(
    engine, session, settings, clock, known_set, bomb
):
    routes = {"/bomb": picture(bomb, "image/png"), "/known.jpg": picture(KNOWN)}
    with serve("127.0.0.2", routes) as (base, _):
        bomb_id, known_id = report(session, f"{base}/bomb", f"{base}/known.jpg")
        assert run_fetches(context_of(engine, settings), 10) == 2
    assert item_of(session, known_id).state == "ready"  # graded by its match, as ever
    item = item_of(session, bomb_id)
    assert (item.state, item.pdq, item.sha256 is not None) == ("queued", None, True)
    notes = dict(events_of(session, bomb_id))["fetched"]["notes"]
    assert "no PDQ hash" in notes[0], notes


def test_content_type_lies_endless_bodies_exact_sizes_huge_headers_and_internal_redirects(
    engine, session, settings, clock, known_set
):
    def endless(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()
        try:
            while True:
                h.wfile.write(b"\xff" * 65536)
        except OSError:
            pass  # the fetcher hung up, as it should

    def huge_header(h):
        h.send_response(200)
        h.send_header("X-Padding", "x" * 100_000)
        h.end_headers()

    def many_headers(h):
        h.send_response(200)
        for n in range(500):
            h.send_header(f"X-{n}", "y")
        h.end_headers()

    routes = {
        "/known-as-html": picture(KNOWN, "text/html"),  # a JPEG that calls itself a page
        "/page-as-jpeg": picture(b'<html><img src="/x.jpg"></html>', "image/jpeg"),
        "/endless": endless,
        "/exact.jpg": picture(KNOWN),
        "/huge-header": huge_header,
        "/many-headers": many_headers,
        "/inside": lambda h: send(h, 302, Location="http://10.0.0.1/a.jpg"),
    }
    policy = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),),
                         timeout_seconds=3, max_bytes=len(KNOWN))  # fmt: skip
    with serve("127.0.0.2", routes) as (base, _):
        paths = list(routes)
        ids = dict(zip(paths, report(session, *(f"{base}{p}" for p in paths)), strict=True))
        assert run_fetches(context_of(engine, settings, policy), 10) == len(paths)
    state = {p: item_of(session, i) for p, i in ids.items()}
    assert state["/known-as-html"].state == "ready"  # the bytes decide, not the header
    assert (state["/page-as-jpeg"].state, state["/page-as-jpeg"].pdq) == ("queued", None)
    endless_item = state["/endless"]
    assert (endless_item.state, endless_item.size) == ("queued", len(KNOWN))
    assert "larger than the fetcher's limit" in dict(events_of(session, ids["/endless"]))[
        "fetched"]["notes"][0]  # fmt: skip
    assert state["/exact.jpg"].state == "ready"  # exactly max_bytes: whole, hashed, matched
    for path in ("/huge-header", "/many-headers"):  # a broken answer: tried again later
        assert (state[path].state, state[path].attempts) == ("received", 1), path
        assert state[path].due_at == T0 + timedelta(minutes=settings.hotline_fetch_retry_minutes)
    assert state["/inside"].state == "failed" and "inside the network" in state[
        "/inside"].last_error  # fmt: skip


# --- the preview ----------------------------------------------------------------------------------


def test_a_preview_decodes_within_the_services_shared_budget(settings):
    """A preview decoded a hoster's picture in full before making it small: a 100-megapixel
    PNG of 300 kB took 750 MB, outside the decode budget that uploads share, so analysts
    asking for a few at once could take the process's memory."""
    import io as _io

    from PIL import Image

    from meldpunt.api.errors import ApiError
    from meldpunt.api.limits import DecodeBudget
    from meldpunt.reports.preview import blurred_preview

    picture_bytes = _io.BytesIO()
    Image.new("RGB", (3000, 2000), (90, 120, 150)).save(picture_bytes, "PNG")
    budget = DecodeBudget(60 * 1024 * 1024)
    policy = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=3)
    with serve("127.0.0.2", {"/big.png": picture(picture_bytes.getvalue(), "image/png")}) as (
        base,
        _,
    ):
        with budget.reserve(30 * 1024 * 1024), pytest.raises(ApiError) as busy:
            blurred_preview(f"{base}/big.png", policy, settings, budget.reserve)
        assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "1"}
        assert budget.in_use == 0
        held = []
        original = budget.reserve

        def watching(cost: int):
            held.append(cost)
            return original(cost)

        preview = blurred_preview(f"{base}/big.png", policy, settings, watching)
    assert preview.startswith(b"\xff\xd8") and held and held[0] > 3000 * 2000 * 3
    assert budget.in_use == 0


# --- the pages, the form and the flaggers' API ----------------------------------------------------


def test_pages_answer_ids_no_database_can_hold_with_a_clear_error(db_url):
    """``item_id: int`` in the hotline's pages let 2**64 through to the database: a server
    error (SQLite: OverflowError; PostgreSQL: out of range) instead of a clear answer."""
    from service import running
    from web_support import csrf_of, sign_in

    huge = "99999999999999999999"
    with running(db_url, run_worker=False) as world, sign_in(world, "analyst") as client:
        for path in (f"/ui/items/{huge}", f"/ui/items/{huge}/preview", f"/ui/contacts/{huge}",
                     f"/ui/items/{huge}/preview.jpg"):  # fmt: skip
            answer = client.get(path)
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
            assert "text/html" in answer.headers["content-type"], path
        csrf = csrf_of(client.get("/ui/contacts").text)
        for path in (f"/ui/items/{huge}/grade", f"/ui/items/{huge}/police-cleared",
                     f"/ui/contact-needed/{huge}/retry", f"/ui/contacts/{huge}",
                     f"/ui/contacts/{huge}/approve"):  # fmt: skip
            answer = client.post(path, data={"csrf": csrf, "grade": "ignore", "name": "x"})
            assert 400 <= answer.status_code < 500, (path, answer.status_code)


def test_the_hotline_keeps_no_credentials_of_a_reported_url(db_url, settings):
    """Decided: a user name and password in a reported URL are dropped, from the URL the hotline
    fetches and notices and from the copy it keeps as given. They belong to someone (often the
    one whose account it is), the hotline never logs in anywhere, and notices, timelines and
    the audit log go to hosters, analysts and authorities."""
    from sqlalchemy import select

    from meldpunt.store.models import AuditEvent, ReportUrl, UrlItem
    from service import running

    with running(db_url, run_worker=False) as world, world.client("admin") as flagger:
        forum = "http://u:s3cret@forum.example/"
        urls = [{"url": "http://victim:s3cret@creds.example/a.jpg"},
                {"url": "user:4711@creds.example/b.jpg"},
                {"url": "https://creds.example/c.jpg", "referer": forum}]  # fmt: skip
        created = flagger.post("/v1/reports", json={"kind": "csam", "urls": urls})
        assert created.status_code == 201, created.text
        assert [u["url"] for u in created.json()["urls"]] == [
            "http://creds.example/a.jpg", "http://creds.example/b.jpg",
            "https://creds.example/c.jpg"]  # fmt: skip
        shown = flagger.get(f"/v1/reports/{created.json()['id']}").json()["urls"]
        assert [u["given"] for u in shown][:2] == ["http://creds.example/a.jpg",
                                                  "creds.example/b.jpg"]  # fmt: skip
        with world.session() as s:
            kept = [*s.scalars(select(ReportUrl.url_given)),
                    *s.scalars(select(ReportUrl.referer)), *s.scalars(select(UrlItem.url)),
                    *s.scalars(select(AuditEvent.details))]  # fmt: skip
        assert not [k for k in kept if k and ("s3cret" in k or "4711" in k)]


def test_the_form_and_the_flagger_api_take_hostile_text_and_urls_with_clear_answers(db_url):
    """What held: every field of the form refuses control characters with the form again (400,
    what was typed kept), never a server error; a thousand URLs of 2,048 characters go in one
    call; repeats count once; homographs stay the host they are (IDNA); 'http://0x7f.1/' is
    kept as given and refused by the fetcher like 127.0.0.1 (its address is checked, not its
    spelling); a body over the limit is 413; nested JSON is a 400."""
    import re

    from meldpunt.config import load_settings
    from service import running

    project = load_settings(report_form_per_hour=1000)
    with running(db_url, run_worker=False, project=project) as world:
        form = world.client(None, follow_redirects=False)
        token = re.search(r'name="form_token" value="([^"]+)"', form.get("/report").text)[1]
        good = {"form_token": token, "urls": "https://pics.example/a.jpg", "kind": "ncii",
                "note": "seen", "name": "Reporter", "email": "r@mail.example",
                "good_faith": "true"}  # fmt: skip
        for field in ("urls", "note", "name", "email", "kind", "form_token"):
            for bad in ("\x00", "\x1b", "\x85", "\x9b"):
                sent = {**good, field: good[field][:2] + bad + good[field][2:]}
                answer = form.post("/report", data=sent)
                assert answer.status_code in (400, 403), (field, bad, answer.status_code)
                assert "text/html" in answer.headers["content-type"]
        flagger = world.client("admin")
        long = [f"https://long.example/{n:04d}/" + "x" * 2022 for n in range(1000)]
        assert all(len(u) == 2048 for u in long)
        taken = flagger.post("/v1/reports", json={"kind": "csam", "urls": long})
        assert taken.status_code == 201 and len(taken.json()["urls"]) == 1000
        again = flagger.post("/v1/reports", json={"kind": "csam", "urls": long[:3] * 300})
        assert again.json()["duplicates"] == 897
        assert {u["state"] for u in again.json()["urls"]} == {"linked"}
        odd = flagger.post("/v1/reports", json={"kind": "csam", "urls": [
            "https://аpple.example/1.jpg", "http://0x7f.1/2.jpg"]})  # fmt: skip
        assert [u["url"] for u in odd.json()["urls"]] == [
            "https://xn--pple-43d.example/1.jpg", "http://0x7f.1/2.jpg"]  # fmt: skip
        nested = flagger.post("/v1/reports", content=b'{"kind": "csam", "urls": ' + b"[" * 50_000,
                              headers={"content-type": "application/json"})  # fmt: skip
        assert nested.status_code == 400
        huge = flagger.post("/v1/reports", content=b'{"urls": ["' + b"x" * 11_000_000 + b'"]}',
                            headers={"content-type": "application/json"})  # fmt: skip
        assert huge.status_code == 413


def test_a_spelling_of_a_loopback_address_is_refused_by_the_fetcher(
    engine, session, settings, clock
):
    from meldpunt.reports import fetcher

    with pytest.raises(fetcher.FetchRefused, match="inside the network"):
        fetcher.fetch("http://0x7f.1:9/2.jpg", FetchPolicy(timeout_seconds=1))


# --- re-checks ------------------------------------------------------------------------------------


def test_a_recheck_decodes_within_its_share_and_a_surprise_is_one_targets_error(
    settings, monkeypatch
):
    """Re-checks compared a swapped picture by its PDQ hash under no decode limit at all, on 16
    threads: a 14,000 x 14,000 PNG of 600 kB cost a gigabyte per check, and a picture too large
    to decode counted as "other content", a miss, on the way to "offline"."""
    from meldpunt.takedown import lifecycle
    from meldpunt.takedown.asn import AsnTable
    from test_reports_grading import smaller_copy

    pdq = pdq_signal(KNOWN).hash
    routes = {"/same.jpg": picture(smaller_copy(KNOWN)),  # re-encoded: online
              "/swapped.png": picture(png_header_only(6000, 6000), "image/png"),
              "/other.jpg": picture(NEW)}  # fmt: skip
    policy = FetchPolicy(allow_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=3)
    with serve("127.0.0.2", routes) as (base, _):
        targets = [lifecycle.Target(n, f"{base}{path}", "127.0.0.2", "image", "0" * 64, pdq)
                   for n, path in enumerate(routes, 1)]  # fmt: skip
        verdicts = lifecycle.check_all(targets, policy, AsnTable())
        assert [v.verdict for v in verdicts] == ["online", "error", "miss"], verdicts
        assert "too large to compare" in verdicts[1].detail

        def broken(*args, **kwargs):
            raise MemoryError("a surprise")

        monkeypatch.setattr(lifecycle, "pdq_signal", broken)
        verdicts = lifecycle.check_all(targets, policy, AsnTable())
    assert [v.verdict for v in verdicts] == ["error", "error", "error"]
    assert "MemoryError" in verdicts[0].detail
    options = lifecycle.compare_options(settings)  # what run_lifecycle uses: the settings'
    assert options.limits.max_decode_bytes == settings.decode_budget_bytes // 16


def test_the_form_takes_the_thousand_long_urls_it_promises(db_url):
    """Starlette reads a form field of at most 1 MB by default: a box of a thousand URLs of
    2,048 characters (which the form allows) was refused with a JSON error, and the reporter's
    typing was lost with it."""
    import re

    from meldpunt.config import load_settings
    from service import running

    with running(db_url, run_worker=False, project=load_settings()) as world:
        form = world.client(None, follow_redirects=False)
        token = re.search(r'name="form_token" value="([^"]+)"', form.get("/report").text)[1]
        urls = "\r\n".join(f"https://long.example/{n:04d}/" + "x" * 2022 for n in range(1000))
        answer = form.post("/report", data={"form_token": token, "urls": urls, "kind": "csam",
                                            "good_faith": "true"})  # fmt: skip
        assert answer.status_code == 201, answer.text[:200]
        assert "MP-" in answer.text


def test_lone_surrogates_in_every_text_field_of_the_hotlines_routes_are_refused(db_url):
    """``test_api_text`` sweeps NUL, ESC, DEL and a C1 control through every text field of the
    OpenAPI routes (the hotline's included); a lone surrogate (valid JSON, ``"\\ud800"``, no
    text a database can store) goes through the hotline's here."""
    from service import running
    from test_api_text import BODIES, OTHER_SHAPES, a_notice, a_queued_item, concrete, with_value

    with running(db_url, run_worker=False) as world:
        assert a_queued_item(world) == 1
        hoster_key, notice_id = a_notice(world)
        hoster = {"Authorization": f"Bearer {hoster_key}"}
        clients = {"analyst": world.client("analyst"), "admin": world.client("admin"),
                   "hoster": world.client(None, headers=hoster)}  # fmt: skip
        fields = {
            ("POST", "/v1/reports"): ["reference", "kind", "note", "urls[].url", "urls[].referer"],
            ("POST", "/v1/items/{item_id}/grade"): ["grade", "category"],
            ("POST", "/v1/notices/{notice_id}/answer"): ["answers[].url", "answers[].answer",
                                                         "answers[].note", "note"],
        }  # fmt: skip
        shapes = [(("POST", "/v1/reports"), "urls[]", OTHER_SHAPES[("POST", "/v1/reports",
                                                                    "urls[]")])]  # fmt: skip
        tried = [((m, p), f, BODIES[(m, p)][1]) for (m, p), names in fields.items() for f in names]
        for (method, path), field, body in [*tried, *shapes]:
            role = BODIES[(method, path)][0]
            sent = with_value(body, field, lambda v: f"{v[:2]}\ud800{v[2:]}")
            answer = clients[role].request(  # "\ud800" escaped, as JSON allows
                method,
                concrete(path, 0, notice_id),
                content=json.dumps(sent).encode(),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 422, (path, field, answer.status_code, answer.text[:200])

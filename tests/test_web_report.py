"""The public report form, the receipt and the private status page, and the analysts' report
pages, over plain HTTP as a browser without JavaScript sends them, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from meldpunt.clock import FrozenClock, use_clock
from meldpunt.config import get_settings, load_settings
from meldpunt.reports.context import link_secret
from meldpunt.web.pages_report import AddressLimiter, _signature, form_token, form_token_ok
from service import World, running
from test_web_pages import browser  # noqa: F401 (the headless Chromium fixture)
from web_support import csrf_of, sign_in

_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
_LINK = re.compile(r'<p class="secret">([^<]+)</p>')


@pytest.fixture
def world(db_url, settings):
    # No worker: the items stay as intake left them.
    with running(db_url, run_worker=False, project=get_settings()) as world:
        yield world


def anonymous(world: World) -> httpx.Client:
    return world.client(None, follow_redirects=False)


def token_of(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "the form has no form token"
    return match.group(1)


def fill(client: httpx.Client, **fields: str) -> dict[str, str]:
    form = client.get("/report")
    assert form.status_code == 200, form.text
    values = {"form_token": token_of(form.text), "urls": "https://pics.example/a.jpg",
              "kind": "csam", "note": "", "name": "", "email": "",
              "good_faith": "true"}  # fmt: skip
    values.update(fields)
    return values


def test_the_form_takes_urls_only_and_works_without_javascript(world):
    with anonymous(world) as client:
        form = client.get("/report")
        assert form.status_code == 200
        html = form.text
        assert 'method="post" action="/report"' in html
        assert '<textarea id="urls" name="urls"' in html
        assert 'type="file"' not in html and "multipart" not in html and "<img" not in html
        assert all(f'value="{kind}"' in html for kind in ("csam", "ncii", "other"))
        assert 'name="good_faith"' in html and 'name="email"' in html
        assert "img-src 'none'" in form.headers["content-security-policy"]
        urls = "HTTPS://Pics.Example/a.jpg#x\n\n  https://pics.example/page  \nhttps://pics.example/a.jpg"
        sent = client.post("/report", data=fill(client, urls=urls, note="on a forum"))
        assert sent.status_code == 201, sent.text
        ref = re.search(r'<strong class="ref">(MP-[0-9A-Z-]+)</strong>', sent.text)
        assert ref, sent.text
        link = _LINK.search(sent.text)
        assert link and link.group(1).startswith("http://127.0.0.1:8000/report/status/")
        assert "given twice" in sent.text
        status_path = link.group(1).removeprefix("http://127.0.0.1:8000")
        assert sent.headers["cache-control"] == "no-store"
        assert sent.headers["referrer-policy"] == "no-referrer"  # the token stays in this page

        status = client.get(status_path)
        assert status.status_code == 200, status.text
        assert ref.group(1) in status.text
        assert status.text.count("Received: waiting to be checked") == 2
        assert "https://pics.example/a.jpg" in status.text and "<img" not in status.text

        path, _, query = status_path.partition("?")
        for wrong in (f"{path}?token=x", path, f"{path}?{query}x",
                      f"/report/status/MP-2222-2222?{query}"):  # fmt: skip
            answer = client.get(wrong)
            assert answer.status_code == 404, wrong
            assert "text/html" in answer.headers["content-type"]
            assert "https://pics.example" not in answer.text


def test_the_status_page_shows_nothing_of_other_reporters(world):
    with anonymous(world) as client:
        first = client.post("/report", data=fill(client, kind="ncii", name="Ann Example",
                            email="ann@example.org", note="my own note"))  # fmt: skip
        second = client.post("/report", data=fill(client))
        assert (first.status_code, second.status_code) == (201, 201)
        for answer in (first, second):
            link = _LINK.search(answer.text)
            assert link
            shown = client.get(urlsplit(link.group(1))._replace(scheme="", netloc="").geturl())
            assert shown.status_code == 200
            assert "Ann" not in shown.text and "ann@example.org" not in shown.text
            assert "my own note" not in shown.text


def test_mistakes_keep_what_was_typed(world):
    with anonymous(world) as client:
        answer = client.post("/report", data=fill(client, kind="ncii", note="kept\nhere"))
        assert answer.status_code == 400
        assert "name and an e-mail address" in answer.text
        assert ">kept\nhere</textarea>" in answer.text and 'value="ncii" checked' in answer.text
        urls = "https://ok.example/1\nftp://files.example/x\nhttps://ok.example/2"
        answer = client.post("/report", data=fill(client, urls=urls))
        assert answer.status_code == 400
        assert "Line 2: only http and https URLs can be reported" in answer.text
        assert "https://ok.example/1\nftp://files.example/x" in answer.text
        answer = client.post("/report", data=fill(client, good_faith=""))
        assert answer.status_code == 400 and "good faith" in answer.text
        answer = client.post("/report", data=fill(client, kind=""))
        assert answer.status_code == 400 and "choose what the material is" in answer.text
        answer = client.post("/report", data=fill(client, note="nul\x00here"))
        assert answer.status_code == 400 and "control characters" in answer.text
        answer = client.post("/report", data=fill(client, urls="\n \n"))
        assert answer.status_code == 400 and "at least one URL" in answer.text
    with world.client("admin") as admin:
        assert admin.get("/v1/reports/1").status_code == 404  # nothing was stored


def test_a_form_without_a_fresh_token_from_this_site_is_refused(world):
    key = link_secret(get_settings())
    old = int(time.time()) - 7 * 3600  # noqa: DTZ005 (a token issued seven hours ago)
    expired = f"{old}.nonce.{_signature(key, old, 'nonce')}"
    with anonymous(world) as client:
        good = fill(client)
        for token in ("", "1.2.3", expired, good["form_token"][:-2] + "00"):
            answer = client.post("/report", data={**good, "form_token": token})
            assert answer.status_code == 403, token
            assert "Form refused" in answer.text
        answer = client.post("/report", data=good, headers={"Sec-Fetch-Site": "cross-site"})
        assert answer.status_code == 403
        answer = client.post("/report", data=good, headers={"Origin": "https://evil.example"})
        assert answer.status_code == 403
        assert client.post("/report", data=good).status_code == 201


def test_each_address_may_send_so_many_reports_an_hour(db_url, settings):
    project = load_settings(report_form_per_hour=2, data_dir=settings.data_dir)
    with running(db_url, run_worker=False, project=project) as world, anonymous(world) as client:
        for _ in range(2):
            assert client.post("/report", data=fill(client)).status_code == 201
        refused = client.post("/report", data=fill(client))
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1800"
        assert "Too many reports" in refused.text and "30 minutes" in refused.text


def test_the_limiter_and_the_form_token_follow_the_clock():
    with use_clock(FrozenClock(datetime(2026, 3, 1, tzinfo=UTC))) as clock:
        limiter = AddressLimiter(per_hour=4)
        assert [limiter.take("10.0.0.1") for _ in range(4)] == [None] * 4
        assert limiter.take("10.0.0.1") == 900
        assert limiter.take("10.0.0.2") is None  # another address has its own allowance
        clock.advance(timedelta(minutes=15))
        assert limiter.take("10.0.0.1") is None
        assert AddressLimiter(per_hour=0).take("10.0.0.1") is None  # 0: no limit
        token = form_token(b"k" * 32)
        assert form_token_ok(b"k" * 32, token) and not form_token_ok(b"j" * 32, token)
        clock.advance(timedelta(hours=5, minutes=59))
        assert form_token_ok(b"k" * 32, token)
        clock.advance(timedelta(minutes=2))
        assert not form_token_ok(b"k" * 32, token)


def test_analysts_see_the_reports_and_import_files(world):
    with anonymous(world) as client:
        sent = client.post("/report", data=fill(client, kind="other", name="Ann",
                           email="ann@example.org", note="two lines\nof note"))  # fmt: skip
        ref = re.search(r'<strong class="ref">(MP-[0-9A-Z-]+)</strong>', sent.text)
        assert ref
    with sign_in(world, "analyst") as analyst:
        listing = analyst.get("/ui/reports")
        assert listing.status_code == 200 and ref.group(1) in listing.text
        assert 'href="/ui/reports"' in listing.text  # in the navigation
        shown = analyst.get(f"/ui/reports/{ref.group(1)}")
        assert shown.status_code == 200
        assert "ann@example.org" in shown.text and "two lines\nof note" in shown.text
        assert "https://pics.example/a.jpg" in shown.text and "received" in shown.text
        assert analyst.get("/ui/reports/MP-2222-2222").status_code == 404
        assert analyst.get("/ui/reports/x%00y").status_code == 404

        page = analyst.get("/ui/reports/import")
        assert page.status_code == 200 and 'type="file"' in page.text
        csrf = csrf_of(page.text)
        scart = ("url;referer;reporter;reference;source;type\n"
                 "https://imported.example/1;;INHOPE;r-1;ICCAM;csam\n"
                 "ftp://imported.example/2;;INHOPE;r-1;ICCAM;csam\n"
                 "https://pics.example/a.jpg;;;;;ncii\n")  # fmt: skip
        answer = analyst.post("/ui/reports/import", data={"csrf": csrf, "format": "auto"},
                              files={"file": ("export.csv", scart.encode())})  # fmt: skip
        assert answer.status_code == 200, answer.text
        text = answer.text
        assert "3 lines read as scart: 2 reports, 1 new URLs, 1 linked to open items" in text
        assert "only http and https URLs" in text and '<td class="num">3</td>' in text
        nothing = analyst.post("/ui/reports/import", data={"csrf": csrf, "format": "jsonl"},
                               files={"file": ("x.jsonl", b"not json\n")})  # fmt: skip
        assert nothing.status_code == 400 and "not JSON" in nothing.text
        refused = analyst.post("/ui/reports/import", data={"format": "auto"},
                               files={"file": ("export.csv", scart.encode())})  # fmt: skip
        assert refused.status_code == 403  # no CSRF token
        imported = analyst.get("/ui/reports?source=import")
        assert imported.text.count('href="/ui/reports/MP-') == 2
    with sign_in(world, "platform") as platform:
        assert platform.get("/ui/reports").status_code == 403
        assert platform.get("/ui/reports/import").status_code == 403


def test_a_browser_without_javascript_sends_a_report(tmp_path, settings, browser):  # noqa: F811
    database = f"sqlite:///{tmp_path / 'browser.db'}"
    with running(database, loopback=True, run_worker=False, project=get_settings()) as world:
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        try:
            page.goto(f"{world.url}/report")
            page.fill("#urls", "https://pics.example/a.jpg\nhttps://pics.example/b.jpg")
            page.check("input[name=kind][value=csam]")
            page.fill("#note", "seen on a forum")
            page.check("input[name=good_faith]")
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "Thank you: your report was received"
            link = page.locator("p.secret").inner_text()
            assert page.locator("img").count() == 0
            page.goto(link.replace("http://127.0.0.1:8000", world.url))
            assert page.locator("td", has_text="Received: waiting to be checked").count() == 2
        finally:
            context.close()

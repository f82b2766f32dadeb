"""The analysts' queue and an item's page: no media by default (no image element, the URL as text,
never a link), grades by plain forms, by htmx and from the keyboard, and the blurred preview only
after an explicit click."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import pytest

from imaging import jpeg, photo
from loopback_web import send, serve
from meldpunt.config import reset_settings
from meldpunt.reports import items
from meldpunt.signals import digest_bytes, pdq_signal
from service import World, running
from test_web_pages import Watch, _sign_in, browser  # noqa: F401 (the Chromium fixture)
from web_support import csrf_of, sign_in

NEW = jpeg(photo("chelsea"))


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    monkeypatch.setenv("MELDPUNT_FETCH_ALLOW_NETWORKS", '["127.0.0.2/32"]')
    reset_settings()


def new_item(world: World, url: str, *, kind: str = "csam", media: str | None = "image") -> int:
    with world.session() as session:
        item, _ = items.open_item(session, url, kind=kind, actor="test")
        if media == "image":
            digests, signal = digest_bytes(NEW), pdq_signal(NEW)
            item.md5, item.sha256, item.pdq, item.pdq_quality = (
                digests.md5, digests.sha256, signal.hash, signal.quality
            )  # fmt: skip
        item.media = media
        items.note(session, [items.move(session, item, "queued", actor="worker", event="fetched")])
        session.commit()
        return item.id


def state_of(world: World, item_id: int) -> tuple[str, str | None, str | None]:
    with world.session() as session:
        item = items.get_item(session, item_id)
        return item.state, item.grade, item.category


def test_the_queue_and_an_items_page_show_no_media_and_grade_by_forms(db_url, settings):
    with running(db_url, run_worker=False) as world:
        a = new_item(world, "http://pictures.example/a.jpg")
        b = new_item(world, "http://pictures.example/b.jpg", kind="ncii")
        page_id = new_item(world, "http://pictures.example/gallery", media="page")
        with world.session() as session:
            child, _ = items.open_item(session, "http://pictures.example/c.jpg", kind="csam",
                                       actor="worker", parent_id=page_id)  # fmt: skip
            session.commit()
        with sign_in(world, "analyst") as client:
            dashboard = client.get("/ui/").text
            assert 'href="/ui/queue"' in dashboard and "waiting for a grade" in dashboard
            queue = client.get("/ui/queue")
            assert queue.status_code == 200
            assert "img-src 'none'" in queue.headers["content-security-policy"]
            html = queue.text
            assert "<img" not in html and "<video" not in html
            assert "http://pictures.example/a.jpg" in html
            assert not re.search(r'(href|src)="https?://', html)  # reported URLs are never links
            assert 'src="/static/queue.js"' in html
            assert "1 pictures and videos" in html  # the page's child
            # the ncii row proposes the ncii category, the csam rows csam
            row_b = html[html.index(f'id="item-{b}"') :].split("</tr>", 1)[0]
            assert '<option value="ncii" selected>' in row_b

            # a plain form: the browser is sent back to the queue
            csrf = csrf_of(html)
            form = {"csrf": csrf, "grade": "illegal", "category": "csam_national",
                    "back": "/ui/queue?state=queued"}  # fmt: skip
            answer = client.post(f"/ui/items/{a}/grade", data=form)
            assert (
                answer.status_code == 303 and answer.headers["location"] == "/ui/queue?state=queued"
            )
            assert state_of(world, a) == ("ready", "illegal", "csam_national")
            assert "graded illegal (csam_national)" in client.get("/ui/queue").text
            again = client.post(f"/ui/items/{a}/grade", data=form)
            assert again.status_code == 303
            assert "only items in the queue" in client.get("/ui/queue").text  # flashed

            # htmx: the row comes back, graded; the category list goes only with illegal/police
            form = {"csrf": csrf, "grade": "ignore", "category": "ncii", "back": "/ui/queue"}
            row = client.post(f"/ui/items/{b}/grade", data=form, headers={"HX-Request": "true"})
            assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="item-{b}"')
            assert "graded ignore, now ignored" in row.text and "<form" not in row.text
            assert state_of(world, b) == ("ignored", "ignore", None)

            # the item's page: everything but the picture, until it is asked for
            item_page = client.get(f"/ui/items/{child.id}")
            assert item_page.status_code == 200
            assert "img-src 'self'" in item_page.headers["content-security-policy"]
            assert "<img" not in item_page.text and "Show blurred preview" in item_page.text
            assert f'href="/ui/items/{page_id}"' in item_page.text  # up to its page
            gallery = client.get(f"/ui/items/{page_id}").text
            assert "no preview" in gallery and "http://pictures.example/c.jpg" in gallery
            assert "<img" not in gallery
            shown = client.get(f"/ui/items/{child.id}", params={"preview": "true"}).text
            assert f'<img src="/ui/items/{child.id}/preview.jpg"' in shown
            assert client.get(f"/ui/items/{child.id}/preview").text.count("<img") == 1
            assert client.get("/ui/items/999999").status_code == 404
            assert client.get("/ui/queue?state=offline").status_code == 404

            # first police, then the police's word
            csrf = csrf_of(client.get(f"/ui/items/{page_id}").text)
            form = {"csrf": csrf, "grade": "police", "category": "csam", "back": "/ui/items/1"}
            client.post(f"/ui/items/{page_id}/grade", data=form)
            assert state_of(world, page_id) == ("police", "police", "csam")
            police_page = client.get(f"/ui/items/{page_id}").text
            assert "The police cleared it" in police_page
            cleared = client.post(f"/ui/items/{page_id}/police-cleared", data={"csrf": csrf})
            assert cleared.status_code == 303
            assert state_of(world, page_id) == ("ready", "illegal", "csam")
            # forms need the session's token
            refused = client.post(f"/ui/items/{child.id}/grade", data={"grade": "ignore"})
            assert refused.status_code == 403
        with sign_in(world, "admin") as admin:
            assert admin.get("/ui/queue").status_code == 200


def test_keyboard_grading_and_the_preview_on_click_in_a_browser(
    browser,  # noqa: F811
    tmp_path: Path,
    loopback_allowed,
):
    routes = {"/cat.jpg": lambda h: send(h, 200, NEW, Content_Type="image/jpeg")}
    database = f"sqlite:///{tmp_path / 'pages.db'}"
    with (
        running(database, loopback=True, run_worker=False) as world,
        serve("127.0.0.2", routes) as (base, seen),
    ):
        first = new_item(world, f"{base}/cat.jpg")
        second = new_item(world, "http://pictures.example/2.jpg", kind="ncii")
        third = new_item(world, "http://pictures.example/3.jpg")
        with closing(browser.new_context(base_url=world.url)) as ctx:
            page = ctx.new_page()
            watch = Watch(page)
            _sign_in(page, watch, world, "analyst")
            page.wait_for_url("**/ui/")
            page.click("nav >> text=Queue")
            page.wait_for_url("**/ui/queue")
            page.locator(f"#item-{first}.current").wait_for()
            watch.check(page)
            page.keyboard.press("j")  # to the second row
            page.locator(f"#item-{second}.current").wait_for()
            page.keyboard.press("i")  # illegal, with the row's own category (ncii)
            page.locator(f"#item-{second} >> text=graded illegal (ncii)").wait_for()
            page.locator(f"#item-{third}.current").wait_for()
            page.keyboard.press("x")  # ignore
            page.locator(f"#item-{third} >> text=graded ignore").wait_for()
            watch.check(page)
            page.locator(f"#item-{first}").click()
            page.keyboard.press("Enter")
            page.wait_for_url(f"**/ui/items/{first}")
            watch.check(page)
            assert seen == [] and watch.pictures == []  # nothing fetched without a click
            page.click("button:has-text('Show blurred preview')")
            page.locator("figure.preview img").wait_for()
            page.wait_for_function(
                "() => document.querySelector('figure.preview img').naturalWidth > 0"
            )
    assert state_of(world, second) == ("ready", "illegal", "ncii")
    assert state_of(world, third) == ("ignored", "ignore", None)
    assert watch.pictures == [f"{world.url}/ui/items/{first}/preview.jpg"]
    assert [s[":path"] for s in seen] == ["/cat.jpg"]
    assert watch.script_errors == []

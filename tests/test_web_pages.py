"""The pages in a real browser: Debian's headless Chromium driven by Playwright, against the real
service on loopback. Skipped (with the reason) where /usr/bin/chromium is missing, except under
CI=true, where that fails.

No picture may ever appear: after every step the page is searched for image elements, and the
browser's requests are watched for images and media.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imaging import jpeg, photo
from service import World, running
from web_support import sign_in

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if _CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _need(CHROMIUM.exists(), f"no browser at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              headless=True)  # fmt: skip
        try:
            yield chromium
        finally:
            chromium.close()


class Watch:
    """Records every request that the browser made for a picture or other media."""

    def __init__(self, page) -> None:
        self.pictures: list[str] = []
        self.visited: list[str] = []
        self.dialogs: list[str] = []
        self.script_errors: list[str] = []
        page.on("request", self._request)
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.on("console", self._console)

    def _dialog(self, dialog) -> None:  # htmx's hx-confirm: the person says yes
        self.dialogs.append(dialog.message)
        dialog.accept()

    def _console(self, message) -> None:
        # a page answered 403 or 404 is logged as a failed load; anything else is a fault
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.script_errors.append(message.text)

    def _request(self, request) -> None:
        if request.resource_type in ("image", "media"):
            self.pictures.append(request.url)

    def check(self, page) -> None:
        """No picture on the page as it is now: no img, picture, video, canvas or CSS image."""
        self.visited.append(page.url)
        found = page.evaluate("""() => {
            const tags = [...document.querySelectorAll(
                'img, picture, video, canvas, object, embed, image')];
            const styled = [...document.querySelectorAll('*')].filter(
                e => getComputedStyle(e).backgroundImage !== 'none');
            return tags.map(e => e.outerHTML).concat(styled.map(e => e.tagName + ' background'));
        }""")
        assert found == [], (page.url, found)


def _sign_in(page, watch: Watch, world: World, role: str) -> None:
    page.goto("/ui/")
    assert "/ui/sign-in" in page.url  # not signed in yet: sent to the sign-in page
    watch.check(page)
    page.fill("#key", world.keys[role])
    page.click("button:has-text('Sign in')")


def test_an_admin_manages_sets_checks_files_and_revokes_a_key(browser, tmp_path: Path):
    with running(f"sqlite:///{tmp_path / 'pages.db'}", loopback=True) as world:
        context = browser.new_context(base_url=world.url, accept_downloads=True)
        page = context.new_page()
        watch = Watch(page)

        _sign_in(page, watch, world, "admin")
        page.wait_for_url("**/ui/")
        assert page.locator("h1").inner_text() == "Dashboard"
        assert "hash sets" in page.locator(".figures").inner_text()
        assert "in step with the registry" in page.inner_text("main")
        watch.check(page)
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # a new set, and a plain list with one bad line imported into it
        page.click("nav >> text=Sets")
        page.fill("#name", "web-demo")
        page.select_option("#default_category", "csam_baseline")
        page.click("button:has-text('Create set')")
        page.wait_for_url("**/ui/sets/web-demo")
        assert "Set web-demo created." in page.inner_text("#messages")
        watch.check(page)
        md5s = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]
        listing = tmp_path / "list.txt"
        listing.write_text(f"# benign test list\nmd5 {md5s[0]}\nthis line is not a hash\n"
                           f"md5 {md5s[1]}\n")  # fmt: skip
        page.set_input_files("#file", str(listing))
        page.click("button:has-text('Import')")
        page.wait_for_selector("text=Rejected lines")
        summary = page.inner_text("main")
        assert "read as plain: 2 added" in summary and "1 rejected" in summary
        assert page.locator("table.problems tbody tr").count() == 1
        assert page.locator("table.problems td").first.inner_text() == "3"
        watch.check(page)

        # the entries, searched by hash with htmx, and exported as a download
        page.click("text=Back to web-demo")
        assert page.locator("#entries tbody tr").count() == 2
        page.fill("#q", md5s[1].upper())
        page.locator("#q").press("Enter")
        # a locator wait: the pages' CSP forbids the eval that wait_for_function's polling uses
        from playwright.sync_api import expect

        expect(page.locator("#entries tbody tr")).to_have_count(1)
        assert md5s[1] in page.inner_text("#entries")
        assert "?q=" not in page.url  # htmx swapped the table in: the page stayed
        with page.expect_download() as download:
            page.click(".export >> text=plain")
        exported = Path(download.value.path()).read_text()
        assert f"md5 {md5s[0]}" in exported and f"md5 {md5s[1]}" in exported

        # one entry withdrawn with a reason: htmx asks first, then swaps its row in place
        row = page.locator("#entries tbody tr", has_text=md5s[1])
        row.locator("input[name=reason]").fill("wrongly classified by the source")
        row.locator("button:has-text('Withdraw')").click()
        expect(row.locator(".badge")).to_have_text("withdrawn")
        assert row.locator("form").count() == 0
        watch.check(page)

        # check a file: the seeded photo, re-encoded, is known; another photo is not
        known = tmp_path / "coffee.jpg"
        known.write_bytes(jpeg(photo("coffee"), quality=80))
        other = tmp_path / "rocket.jpg"
        other.write_bytes(jpeg(photo("rocket")))
        for path, verdict in ((known, "known"), (other, "unknown")):
            page.click("nav >> text=Check a file")
            page.set_input_files("#file", str(path))
            page.click("button:has-text('Check')")
            page.wait_for_selector(".verdict")
            assert page.locator(".verdict").inner_text() == verdict
            assert re.search(r"PDQ\s+[0-9a-f]{64}", page.inner_text(".result"))
            watch.check(page)
        page.click("nav >> text=Check a file")
        page.set_input_files("#file", str(known))
        page.click("button:has-text('Check')")
        assert "police" in page.inner_text(".result table:not(.facts)")

        # an organisation, a key shown once, then revoked with htmx: the API refuses it
        page.click("nav >> text=Organisations")
        page.fill("#org-name", "web-platform")
        page.select_option("#org-kind", "platform")
        page.click("button:has-text('Create organisation')")
        page.wait_for_url("**/ui/orgs/web-platform")
        page.fill("#key-label", "upload service")
        page.click("button:has-text('Create key')")
        assert "only time the key is shown" in page.inner_text("main")
        key = page.locator("#new-key").inner_text().strip()
        assert key.startswith("mp_")
        watch.check(page)
        check = {"items": [{"signals": [{"type": "md5", "value": md5s[0]}]}]}
        headers = {"Authorization": f"Bearer {key}"}
        answer = httpx.post(f"{world.url}/v1/check", json=check, headers=headers)
        assert answer.status_code == 200 and answer.json()["results"][0]["match"] is True
        page.click("text=Done: back to web-platform")
        assert key not in page.content()  # shown once, never again
        row = page.locator("table.keys tbody tr", has_text=key[:12])
        row.locator("button:has-text('Revoke')").click()
        row.locator("text=revoked").wait_for()
        assert watch.dialogs[0].startswith("Withdraw entry ")
        assert watch.dialogs[1:] == [
            f"Revoke key {key[:12]}…? Whatever uses it stops working at once."
        ]
        assert page.url.endswith("/ui/orgs/web-platform")  # htmx swapped the row, no reload
        watch.check(page)
        answer = httpx.post(f"{world.url}/v1/check", json=check, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_key"

        page.click("text=Sign out")
        page.wait_for_url("**/ui/sign-in")
        page.goto("/ui/sets")
        assert "/ui/sign-in" in page.url
        context.close()
    assert watch.pictures == [], watch.pictures
    assert watch.script_errors == [], watch.script_errors
    assert len(watch.visited) >= 8


def test_an_analyst_decides_a_review_and_may_not_manage_organisations(browser, tmp_path: Path):
    with running(f"sqlite:///{tmp_path / 'pages.db'}", loopback=True) as world:
        with world.client("platform") as api:
            item = {"signals": [{"type": "md5", "value": world.known_md5}], "ref": "upload-7"}
            checked = api.post("/v1/check", json={"items": [item]})
            hit_id = checked.json()["results"][0]["matches"][0]["hit_id"]
            outcome = {"outcome": "false_positive", "reason": "a picture of a teapot"}
            assert api.post(f"/v1/hits/{hit_id}/outcome", json=outcome).status_code == 200
        context = browser.new_context(base_url=world.url)
        page = context.new_page()
        watch = Watch(page)
        _sign_in(page, watch, world, "analyst")
        page.wait_for_url("**/ui/")
        assert "Organisations" not in page.inner_text("nav")
        page.click("nav >> text=Reviews")
        row = page.locator("table.reviews tbody tr", has_text="a picture of a teapot")
        assert world.known_md5 in row.inner_text() and "platform-a" in row.inner_text()
        watch.check(page)
        row.locator("button:has-text('Confirm')").click()
        page.locator("table.reviews tbody tr >> text=confirmed").wait_for()
        assert len(watch.dialogs) == 1 and watch.dialogs[0].startswith("Confirm review")
        page.goto("/ui/reviews")
        assert "Nothing to review." in page.inner_text("table.reviews")
        response = page.goto("/ui/orgs")
        assert response is not None and response.status == 403
        assert "Not for your role" in page.inner_text("main")
        watch.check(page)
        context.close()
    assert watch.pictures == [] and watch.script_errors == [], watch.script_errors


def test_every_page_renders_on_both_databases(db_url):
    """Not a browser test: each page of an admin answers 200 with a whole page."""
    with running(db_url) as world, sign_in(world, "admin") as client:
        for path in ("/ui/", "/ui/sets", "/ui/sets/police", "/ui/sets/police?q=" + world.known_md5,
                     "/ui/check", "/ui/reviews", "/ui/reviews?all=true", "/ui/hits",
                     "/ui/hits?overdue=true", "/ui/orgs", "/ui/orgs/platform-a",
                     "/ui/probing"):  # fmt: skip
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:500])
            assert "</html>" in response.text and "<img" not in response.text, path
        found = client.get("/ui/sets/police", params={"q": world.known_md5}).text
        assert world.known_md5 in found and world.known_pdq not in found
        for format in ("jsonl", "vics", "te-csv", "plain"):
            export = client.get("/ui/sets/police/export", params={"format": format})
            assert export.status_code == 200, format
            assert "attachment" in export.headers["content-disposition"]
            assert world.known_md5 in export.text.lower(), format
        assert client.get("/ui/sets/nope").status_code == 404
        assert client.get("/ui/sets/police/export?format=gif").status_code == 400

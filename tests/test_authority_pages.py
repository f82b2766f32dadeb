"""The authority's pages on a running service (SQLite and PostgreSQL): the overview with the
escalations, a case opened and an order issued through the forms, the order and duty-of-care
pages, who may see them, the public decisions and the order behind its signed link; and the
main page and /decisions in headless Chromium (no picture ever requested)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from meldpunt import checks
from meldpunt.authority import links
from meldpunt.reports.context import link_secret
from meldpunt.store.models import Order
from notice_support import add_contact, ready_item
from service import World, running
from test_web_pages import Watch, browser  # noqa: F401  (the module's browser fixture)
from web_support import csrf_of, sign_in


def _seed(world: World) -> tuple[str, list[int]]:
    """An authority key, and three escalated items at one hoster."""
    with world.session() as s:
        checks.create_org(s, "atkm", "authority")
        key = checks.create_key(s, "atkm", "authority")[1]
        contact = add_contact(s, "polder")
        ids = [ready_item(s, f"http://p.example/{n}.jpg", contact, state="escalated").id
               for n in range(3)]  # fmt: skip
        s.commit()
    return key, ids


def test_the_authority_works_a_case_through_the_pages(db_url, settings):
    with running(db_url, run_worker=False) as world:
        key, ids = _seed(world)
        with sign_in(world, key=key) as client:
            overview = client.get("/ui/authority")
            assert overview.status_code == 200, overview.text
            assert "AS64500" in overview.text and "Open case" in overview.text
            assert 'href="/ui/authority"' in overview.text  # in the navigation
            fields = {"csrf": csrf_of(overview.text), "items": [str(i) for i in ids]}
            opened = client.post("/ui/authority/cases", data=fields)
            assert opened.status_code == 303, opened.text
            case_path = opened.headers["location"]
            case_page = client.get(case_path)
            assert "Issue an order" in case_page.text and "http://p.example/0.jpg" in case_page.text
            csrf = csrf_of(case_page.text)
            refused = client.post(f"{case_path}/orders", data={"csrf": csrf, "reasons": "R",
                                                              "hours": "24"})  # fmt: skip
            assert refused.status_code == 400 and "at most 12 hours" in refused.text
            nul = client.post(f"{case_path}/orders", data={"csrf": csrf, "reasons": "a\x00b"})
            assert nul.status_code == 400
            forged = client.post(f"{case_path}/orders", data={"csrf": "x", "reasons": "R"})
            assert forged.status_code == 403
            chosen = [str(ids[0]), str(ids[1])]
            issued = client.post(f"{case_path}/orders",
                                 data={"csrf": csrf, "reasons": "Ignored notices.", "hours": "1",
                                       "items": chosen, "public": "1"})  # fmt: skip
            assert issued.status_code == 303, issued.text
            order_page = client.get(issued.headers["location"])
            assert "Compliance per URL" in order_page.text
            assert order_page.text.count("http://p.example/") == 2
            fined = client.post("/ui/authority/fines",
                                data={"csrf": csrf, "case_id": case_path.rsplit("/", 1)[1],
                                      "amount": "5000", "legal_basis": "Art. 2",
                                      "reasons": "Ignored.", "public": "1"})  # fmt: skip
            assert fined.status_code == 303, fined.text
            record = client.get("/ui/authority/hosters/64500")
            assert "Duty of care: AS64500" in record.text and "€5,000.00" in record.text
            assert client.get("/ui/authority/hosters/0").status_code == 422
            assert client.get("/ui/authority/orders/999999").status_code == 404
        with sign_in(world, "analyst") as analyst:
            assert analyst.get("/ui/authority").status_code == 403
            assert 'href="/ui/authority"' not in analyst.get("/ui/notices").text
        with world.client(None, follow_redirects=False) as anonymous:
            assert anonymous.get("/ui/authority").status_code == 303  # to the sign-in page
            public = anonymous.get("/decisions")
            assert public.status_code == 200
            assert "Removal order" in public.text and "Fine" in public.text
            assert "p.example" not in public.text  # never the URLs

            # the order behind the link in its mail (the service's own link key)
            with world.session() as s:
                order = s.scalars(select(Order)).one()
            key_bytes = link_secret(settings)
            link = links.order_link("", key_bytes, order.id, order.issued_at)
            shown = anonymous.get(link)
            assert shown.status_code == 200, shown.text
            assert "Acknowledge receipt" in shown.text and "http://p.example/0.jpg" in shown.text
            done = anonymous.post(link, data={"name": "Desk of Polder"})
            assert done.status_code == 303
            assert "Receipt acknowledged" in anonymous.get(link).text
            with world.session() as s:
                acknowledged = s.get(Order, order.id)
                assert acknowledged.acknowledged_by == "link:Desk of Polder"
            tampered = re.sub(r".$", lambda m: "A" if m.group() != "A" else "B", link)
            assert anonymous.get(tampered).status_code == 404
            expired = links.sign_token(key_bytes, order.id, datetime(2020, 1, 1, tzinfo=UTC))
            assert anonymous.get(f"/order/{expired}").status_code == 410


def test_the_main_page_and_the_decisions_in_a_browser(browser, tmp_path: Path):  # noqa: F811
    with running(f"sqlite:///{tmp_path / 'pages.db'}", loopback=True, run_worker=False) as world:
        key, ids = _seed(world)
        context = browser.new_context(base_url=world.url)
        page = context.new_page()
        watch = Watch(page)
        page.goto("/ui/sign-in")
        page.fill("#key", key)
        page.click("button:has-text('Sign in')")
        page.wait_for_url("**/ui/authority")
        assert page.locator("h1").inner_text() == "Authority"
        assert "AS64500" in page.inner_text("table.escalations")
        watch.check(page)
        page.click("table.escalations button:has-text('Open case')")
        page.wait_for_url("**/ui/authority/cases/*")
        assert page.locator("h1").inner_text().startswith("Case C-")
        watch.check(page)
        page.fill("textarea[name=reasons] >> nth=0", "Ignored three notices.")
        page.fill("input[name=hours]", "1")
        page.check("input[name=public]")
        page.click("button:has-text('Issue order')")
        page.wait_for_url("**/ui/authority/orders/*")
        assert "issued" in page.locator("h1").inner_text()
        watch.check(page)
        page.goto("/ui/authority")
        assert "issued" in page.inner_text("table.orders")
        watch.check(page)
        anonymous = browser.new_context(base_url=world.url).new_page()
        public_watch = Watch(anonymous)
        anonymous.goto("/decisions")
        assert "Removal order" in anonymous.inner_text("table.decisions")
        assert "p.example" not in anonymous.content()
        public_watch.check(anonymous)
        assert watch.pictures == [] and public_watch.pictures == []
        assert watch.script_errors == [] and public_watch.script_errors == []
        context.close()

"""`/docs` works without the internet: the page names no other host, its assets come from
meldpunt itself, and a real browser that may reach nothing else shows the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service import service_settings, serving
from test_web_pages import browser  # noqa: F401 (the headless Chromium fixture)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("docs") / "meldpunt.db"
    with serving(service_settings(f"sqlite:///{database}")) as base:
        yield base


def test_docs_page_loads_its_assets_from_meldpunt(url: str):
    with httpx.Client(base_url=url) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "default-src 'none'" in page.headers["content-security-policy"]
        html = page.text
        assert re.findall(r"https?://", html) == []  # no CDN, no favicon from elsewhere
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sorted(Path(asset).name for asset in assets) == [
            "favicon-32x32.png",
            "swagger-ui-bundle.js",
            "swagger-ui.css",
        ]
        for asset in assets:
            assert asset.startswith("/static/swagger-ui/")
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 500
        assert "'/openapi.json'" in html and client.get("/openapi.json").status_code == 200
        assert client.get("/docs/oauth2-redirect").status_code == 200
        assert client.get("/redoc").status_code == 404  # the second docs page is switched off


def test_docs_render_in_a_browser_that_reaches_nothing_else(url: str, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    elsewhere: list[str] = []

    def only_meldpunt(route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_meldpunt)
    try:
        page.goto(f"{url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "meldpunt" in page.inner_text(".swagger-ui .info .title")
        assert page.locator(".opblock-summary-path", has_text="/v1/check").count() >= 1
    finally:
        context.close()
    assert elsewhere == []

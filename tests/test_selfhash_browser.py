"""The page /protect in headless Chromium and headless Firefox: the browser's PDQ agrees with
Meta's reference within 10 bits on the PDQ test vectors of quality 80 or more, and with the
server's on the bundled photos; no request the page makes carries picture bytes; a case is
opened with a PIN, seen again, and withdrawn.

Chromium is Debian's, driven by Playwright; Firefox is Debian's ``firefox-esr``, driven over
WebDriver BiDi by ``bidi.py`` (Playwright's own Firefox build cannot be had here). Both run the
same steps through one small interface (``Tab``). Each is skipped, with the reason, where the
browser is missing, except under CI, where that fails. Firefox runs the case on SQLite only:
what the database does is the same whichever browser asks, and Chromium runs it on both.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from bidi import firefox, firefox_binary
from imaging import encode, photo
from meldpunt import registry
from meldpunt.config import load_settings
from meldpunt.signals import HashOptions, digest_bytes, pdq_signal
from meldpunt.signals.pdq import hamming
from service import running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VECTORS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdq-vectors"
if not VECTORS.is_dir():
    VECTORS = Path("/work/shared/data/pdq-vectors")
SAMPLES = Path(registry.__file__).parent.parent / "samples"
_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

HASH_IN_PAGE = """async (encoded, options) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    return await globalThis.meldpuntHashing.hashFile(new Blob([bytes]), options);
}"""


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if _CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


class Tab(Protocol):
    """What the tests do with a browser tab, whichever browser it is."""

    def goto(self, path: str) -> None: ...
    def reload(self) -> None: ...
    def evaluate(self, function: str, *args: Any) -> Any: ...
    def click(self, selector: str) -> None: ...
    def check(self, selector: str) -> None: ...
    def fill(self, selector: str, value: str) -> None: ...
    def text(self, selector: str) -> str: ...
    def texts(self, selector: str) -> list[str]: ...
    def count(self, selector: str) -> int: ...
    def attribute(self, selector: str, name: str) -> str | None: ...
    def visible(self, selector: str) -> bool: ...
    def wait_for(self, selector: str, timeout: float = 60) -> None: ...
    def wait_text(self, selector: str, text: str, timeout: float = 60) -> None: ...
    def set_files(self, selector: str, paths: list[Path]) -> None: ...
    def requests(self) -> list[tuple[str, str, bytes]]: ...
    def errors(self) -> list[str]: ...
    def close(self) -> None: ...


class PlaywrightTab:
    """A Chromium page through Playwright, as a ``Tab``."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self._context = browser.new_context(base_url=base_url)
        self.page = self._context.new_page()
        self._sent: list[tuple[str, str, bytes]] = []
        self._errors: list[str] = []
        self.page.on(
            "request", lambda r: self._sent.append((r.method, r.url, r.post_data_buffer or b""))
        )
        self.page.on("pageerror", lambda error: self._errors.append(str(error)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def goto(self, path: str) -> None:
        self.page.goto(path)

    def reload(self) -> None:
        self.page.reload()

    def evaluate(self, function: str, *args: Any) -> Any:
        return self.page.evaluate(f"(args) => ({function})(...args)", list(args))

    def click(self, selector: str) -> None:
        self.page.click(selector)

    def check(self, selector: str) -> None:
        self.page.check(selector)

    def fill(self, selector: str, value: str) -> None:
        self.page.fill(selector, value)

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def texts(self, selector: str) -> list[str]:
        return list(self.page.locator(selector).all_inner_texts())

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())

    def attribute(self, selector: str, name: str) -> str | None:
        return self.page.get_attribute(selector, name)  # type: ignore[no-any-return]

    def visible(self, selector: str) -> bool:
        return bool(self.page.is_visible(selector))

    def wait_for(self, selector: str, timeout: float = 60) -> None:
        self.page.locator(selector).first.wait_for(timeout=timeout * 1000)

    def wait_text(self, selector: str, text: str, timeout: float = 60) -> None:
        self.page.wait_for_function(
            "([s, t]) => document.querySelector(s)?.innerText === t",
            arg=[selector, text],
            timeout=timeout * 1000,
        )

    def set_files(self, selector: str, paths: list[Path]) -> None:
        self.page.set_input_files(selector, [str(p) for p in paths])

    def requests(self) -> list[tuple[str, str, bytes]]:
        return list(self._sent)

    def errors(self) -> list[str]:
        return list(self._errors)

    def close(self) -> None:
        self._context.close()


OpenTab = Callable[[str], Tab]


@pytest.fixture(scope="module")
def chromium() -> Iterator[OpenTab]:
    _need(CHROMIUM.exists(), f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield lambda base_url: PlaywrightTab(browser, base_url)
        finally:
            browser.close()


@pytest.fixture(scope="module")
def firefox_tabs() -> Iterator[OpenTab]:
    binary = firefox_binary()
    _need(binary is not None, "no Firefox on this machine (apt-get install firefox-esr)")
    assert binary is not None
    with firefox(binary) as browser:
        major = int(browser.version.split(".")[0])
        # network.getData with request bodies came in Firefox 146: older ones cannot show that
        # no request carries the pictures.
        assert major >= 146, f"Firefox {browser.version} is older than 146"
        yield browser.new_tab


@pytest.fixture(params=["chromium", "firefox"])
def open_tab(request: pytest.FixtureRequest) -> OpenTab:
    fixture = "chromium" if request.param == "chromium" else "firefox_tabs"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


def _vectors() -> list[dict[str, str]]:
    with (VECTORS / "reference-hashes.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if int(row["quality"]) >= 80]


def test_the_browser_pdq_agrees_with_the_reference_on_the_test_vectors(open_tab, tmp_path):
    _need((VECTORS / "reference-hashes.csv").is_file(), f"no PDQ vectors at {VECTORS}")
    rows = _vectors()
    assert len(rows) >= 30
    with running(f"sqlite:///{tmp_path / 'v.db'}", loopback=True) as world:
        tab = open_tab(world.url)
        tab.goto("/protect")
        distances = {}
        for row in rows:
            data = (VECTORS / row["path"]).read_bytes()
            # The reference hashes ignore EXIF orientation: the pixels as stored.
            found = tab.evaluate(
                HASH_IN_PAGE, base64.b64encode(data).decode(), {"exifTranspose": False}
            )
            assert found["md5"] == row["md5"], row["path"]
            distances[row["path"]] = hamming(found["pdq"], row["pdq"])
        assert not tab.errors()
        tab.close()
    far = {path: d for path, d in distances.items() if d > 10}
    assert not far, far


def _swapped_primaries() -> bytes:
    """An ICC profile that is sRGB with its red and blue primaries swapped: a browser that
    managed colours by it would turn reds blue, and the hash with them."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    tags = {}
    for n in range(count):
        name, offset, size = struct.unpack(">4sII", profile[132 + 12 * n : 144 + 12 * n])
        tags[name] = (offset, size)
    (r, r_size), (b, b_size) = tags[b"rXYZ"], tags[b"bXYZ"]
    red, blue = bytes(profile[r : r + r_size]), bytes(profile[b : b + b_size])
    profile[r : r + r_size], profile[b : b + b_size] = blue, red
    profile[84:100] = bytes(16)  # no profile ID to check
    return bytes(profile)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _telling_pictures(folder: Path) -> dict[str, bytes]:
    """Pictures on which browsers are known to differ from each other or from the server:
    colour profiles, PNG gamma, EXIF orientation, and transparency (a canvas keeps colours
    multiplied by their alpha, so it loses them where a picture is transparent)."""
    rgb = photo("astronaut")[::2, ::2].copy()
    height, width = rgb.shape[:2]
    alpha = np.tile((np.arange(width) % 256).astype(np.uint8), (height, 1))
    rgb[:, : width // 3], alpha[:, : width // 3] = 255, 0  # white, stored under transparency
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    turned = Image.Exif()
    turned[0x0112] = 6
    turned_back = Image.Exif()
    turned_back[0x0112] = 7
    pictures = {
        "profile.jpg": encode(rgb, "JPEG", quality=92, icc_profile=_swapped_primaries()),
        "profile.png": encode(rgb, "PNG", icc_profile=_swapped_primaries()),
        "exif-6.jpg": encode(rgb, "JPEG", quality=92, exif=turned.tobytes()),
        "alpha.png": encode(rgba, "PNG"),
        "alpha-exif-7.png": encode(rgba, "PNG", exif=turned_back.tobytes()),
        "grey-alpha.png": encode(rgba.convert("LA"), "PNG"),
        "palette-transparent.png": encode(
            Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=64),
            "PNG",
            transparency=0,
        ),
    }
    wide = np.dstack([rgb, alpha]).astype(np.uint16) * 257 + 3  # 16 bits, low bytes apart
    head = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    rows = b"".join(b"\0" + wide[y].astype(">u2").tobytes() for y in range(height))
    gamma = struct.pack(">I", 100_000)  # gamma 1.0: a browser that applied it would brighten
    flat = np.ascontiguousarray(rgb)
    plain_rows = b"".join(b"\0" + flat[y].tobytes() for y in range(height))
    signature = b"\x89PNG\r\n\x1a\n"
    pictures["alpha-16.png"] = (
        signature + _chunk(b"IHDR", head) + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )  # fmt: skip
    pictures["gamma.png"] = (
        signature + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _chunk(b"gAMA", gamma) + _chunk(b"IDAT", zlib.compress(plain_rows))
        + _chunk(b"IEND", b"")
    )  # fmt: skip
    for name, data in pictures.items():
        (folder / name).write_bytes(data)
    return pictures


def test_pictures_that_tell_browsers_apart_hash_as_on_the_server(open_tab, tmp_path):
    pictures = _telling_pictures(tmp_path)
    with running(f"sqlite:///{tmp_path / 't.db'}", loopback=True) as world:
        tab = open_tab(world.url)
        tab.goto("/protect")
        distances = {}
        for name, data in pictures.items():
            found = tab.evaluate(HASH_IN_PAGE, base64.b64encode(data).decode(), {})
            server = pdq_signal(data, HashOptions(dihedral=True))
            with Image.open(io.BytesIO(data)) as image:  # turned as the person sees it
                assert (found["width"], found["height"]) == ImageOps.exif_transpose(image).size
            distances[name] = hamming(found["pdq"], server.hash)
        assert not tab.errors()
        tab.close()
    assert all(d <= 10 for d in distances.values()), distances
    # transparent PNGs are decoded by the page itself, to the server's very pixels
    exact = {name: d for name, d in distances.items() if name.startswith(("alpha", "grey", "pal"))}
    assert set(exact.values()) == {0}, exact


def _carries(body: bytes, picture: bytes) -> bool:
    """Whether ``body`` holds a piece of ``picture``: raw, hex or base64 (any alignment)."""
    for start in (100, len(picture) // 2, len(picture) - 200):
        piece = picture[start : start + 48]
        forms = [piece, piece.hex().encode()]
        forms += [base64.b64encode(piece[shift:])[4:40] for shift in range(3)]
        if any(form in body for form in forms):
            return True
    return False


def _data_of(url: str) -> bytes:
    """What a ``data:`` address holds."""
    head, _, content = url.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(content + "=" * (-len(content) % 4))
    return unquote_to_bytes(content)


def _a_person_hashes_their_pictures(open_tab: OpenTab, db_url: str, tmp_path: Path) -> None:
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url)
    files = [SAMPLES / "chelsea.jpg", SAMPLES / "rocket.jpg"]
    pictures = [f.read_bytes() for f in files]
    servers = [pdq_signal(data, HashOptions(dihedral=True)) for data in pictures]
    with running(db_url, loopback=True, project=project) as world:
        tab = open_tab(world.url)
        tab.goto("/protect")

        # under 18: sent to the report form instead
        tab.check("#age-minor")
        assert tab.visible("#under-18") and not tab.visible("#steps")
        assert tab.attribute("#under-18 a", "href") == "/report"
        tab.check("#age-adult")
        tab.check("#own")
        assert tab.visible("#steps")

        tab.set_files("#pictures", files)
        tab.wait_for("#chosen li:nth-child(2) .pdq")
        shown = tab.texts("#chosen .pdq")
        md5s = tab.texts("#chosen .md5")
        assert tab.count("#chosen img.local-picture") == 2  # shown here, from blob:
        for data, server, pdq_text, md5_text in zip(pictures, servers, shown, md5s, strict=True):
            assert hamming(pdq_text.split()[-1], server.hash) <= 10
            assert md5_text.split()[-1] == digest_bytes(data).md5

        tab.fill("#pin", "harbour-2291")
        tab.fill("#pin2", "harbour-2291")
        tab.click("#send")
        tab.wait_for("#result:not([hidden])")
        number = tab.text("#case-number")
        assert number.startswith("NC-")
        (opened,) = [b for _, url, b in tab.requests() if url.endswith("/v1/protect/cases")]
        payload = json.loads(opened)
        for server, picture in zip(servers, payload["pictures"], strict=True):
            # the seven other orientations, each within 10 bits of the server's
            assert len(picture["orientations"]) == 7
            for mine in picture["orientations"]:
                assert min(hamming(mine, theirs) for theirs in server.dihedral or ()) <= 10

        # come back with the number and the PIN, then withdraw
        tab.reload()
        tab.fill("#case", number)
        tab.fill("#case-pin", "harbour-2291")
        tab.click("#show")
        tab.wait_for("#case-view:not([hidden])")
        assert "2 pictures" in tab.text("#case-state")
        tab.fill("#case-pin", "wrong-pin-1")
        tab.click("#show")
        tab.wait_for("#message:not([hidden])")
        assert "do not fit" in tab.text("#message")
        tab.fill("#case-pin", "harbour-2291")
        tab.click("#withdraw")  # the confirmation is answered with OK
        tab.wait_text("#case-state", "withdrawn")

        assert not tab.errors()
        # every request this page made, and what it carried: never the pictures
        # (blob: addresses are the pictures shown from this device's memory, data: addresses
        # carry their content in themselves (Firefox's confirmation box loads a font so): no
        # network, and no picture in them)
        sent = tab.requests()
        inside = (world.url, f"blob:{world.url}/", "data:")
        assert sent and not [url for _, url, _ in sent if not url.startswith(inside)]
        for content in (_data_of(url) for _, url, _ in sent if url.startswith("data:")):
            assert not any(_carries(content, picture) for picture in pictures)
        assert not [body for _, url, body in sent if url.startswith("blob:") and body]
        bodies = [body for _, _, body in sent if body]
        assert len(bodies) == 4  # open, show, show (wrong PIN), withdraw
        for body in bodies:
            assert len(body) < 4_000
            assert not any(_carries(body, picture) for picture in pictures)
        tab.close()


def test_a_person_hashes_their_pictures_on_their_device(chromium, db_url, tmp_path):
    _a_person_hashes_their_pictures(chromium, db_url, tmp_path)


def test_a_person_hashes_their_pictures_on_their_device_in_firefox(firefox_tabs, tmp_path):
    _a_person_hashes_their_pictures(firefox_tabs, f"sqlite:///{tmp_path / 'f.db'}", tmp_path)

"""Adding pictures to a set as an attacker would try it: ``POST /v1/sets/{name}/pictures``, the
set page's upload form and ``PUT /v1/sets/{name}/ways``, on SQLite and PostgreSQL. Every bad
file is named with why and the good ones are added; every bad request is refused as a whole with
a clear 4xx before any picture is decoded, and nothing of it is written; uploads at once never
fail each other."""

from __future__ import annotations

import io
import struct
import threading
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from imaging import encode, jpeg, photo
from meldpunt.api.limits import DecodeBudget
from meldpunt.signals import HashOptions, ImageLimits, ImageTooLarge
from meldpunt.store.models import Item
from service import World, running
from web_support import csrf_of, sign_in

BAD_TEXT = ["\x00", "\x1b", "\x7f", "\x85", "\n"]  # NUL, ESC, DEL, NEL, a line break


def webp_claiming(width: int, height: int) -> bytes:
    """A lossless WebP of one flat colour whose header says ``width`` x ``height``: a few dozen
    bytes that would decode to ``width * height`` pixels (a flat picture costs no bits a pixel)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 30, 200)).save(out, "WEBP", lossless=True)
    data = bytearray(out.getvalue())
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    (bits,) = struct.unpack("<I", data[21:25])
    size = (width - 1) | ((height - 1) << 14)
    data[21:25] = struct.pack("<I", (bits & ~((1 << 28) - 1)) | size)
    return bytes(data)


def png_bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # 400 megapixels in a few kilobytes
    return out.getvalue()


def noise(height: int, width: int) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(pixels, "PNG")


def entries(world: World) -> int:
    with world.session() as session:
        return int(session.scalar(select(func.count()).select_from(Item)) or 0)


def files_of(*pictures: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in pictures]


def raw_multipart(*pictures: tuple[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body written by hand: file names as raw bytes (a client library would
    percent-encode a NUL or a line break in them)."""
    boundary = b"meldpunt-boundary"
    body = b"".join(
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + name + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + data + b"\r\n"
        for name, data in pictures
    ) + b"--" + boundary + b"--\r\n"  # fmt: skip
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


GOOD = ("rocket.jpg", jpeg(photo("rocket")))


def test_every_kind_of_bad_file_is_named_and_the_good_ones_added(db_url):
    truncated = GOOD[1][: len(GOOD[1]) // 2]
    sent = [
        ("empty.jpg", b""),
        ("notes.txt", b"not a picture"),
        ("truncated.jpg", truncated),
        ("tall.png", noise(40_000, 1)),
        ("wide.png", noise(1, 40_000)),
        ("dot.png", noise(1, 1)),
        ("huge.webp", webp_claiming(14_000, 14_000)),  # 196 megapixels
        ("bomb.png", png_bomb()),
        ("big.jpg", jpeg(photo("astronaut"), quality=100) + b"\0" * 300_000),
        GOOD,
        ("ne\x1b[31mw\u202e.jpg", jpeg(photo("chelsea"))),  # a name is only a label
    ]
    with running(db_url, max_upload_bytes=300_000) as world, world.client("analyst") as analyst:
        before = entries(world)
        response = analyst.post("/v1/sets/police/pictures", files=files_of(*sent))
        assert response.status_code == 201, response.text
        out = {o["name"]: o for o in response.json()["pictures"]}
        codes = {name: o["code"] for name, o in out.items() if o["outcome"] == "rejected"}
        assert codes == {
            "empty.jpg": "not_an_image",
            "notes.txt": "not_an_image",
            "truncated.jpg": "corrupt_image",
            "tall.png": "low_quality",
            "wide.png": "low_quality",
            "dot.png": "low_quality",
            "huge.webp": "image_too_large",
            "bomb.png": "image_too_large",
            "big.jpg": "file_too_large",
        }
        assert all(out[name]["problem"] for name in codes)
        assert out["rocket.jpg"]["outcome"] == out["ne\ufffd[31mw\ufffd.jpg"]["outcome"]
        assert out["rocket.jpg"]["outcome"] == "added"
        assert entries(world) == before + 2
        # names as raw bytes: NUL, a line break, bytes that are not UTF-8
        names = [b"nul\x00.jpg", b"two\nlines.jpg", b"latin-\xe9\xff.jpg"]
        photos = [jpeg(photo(p)) for p in ("astronaut", "camera", "immunohistochemistry")]
        body, headers = raw_multipart(*zip(names, photos, strict=True))
        response = analyst.post("/v1/sets/police/pictures", content=body, headers=headers)
        assert response.status_code in (201, 400), response.text
        if response.status_code == 201:
            out = response.json()["pictures"]
            assert [o["outcome"] for o in out] == ["added"] * 3, out
            assert all(o["name"].isprintable() for o in out), out
            assert entries(world) == before + 5


def test_a_196_megapixel_webp_is_refused_without_taking_decoding_memory():
    """Past the service's pixel limit it is refused from its header; within it (a service that
    allows larger pictures), by what decoding it would need, before it holds the budget that
    other pictures decode in."""
    budget = DecodeBudget(1 << 30)
    reserved: list[int] = []
    real = budget.reserve

    def spy(cost: int) -> Any:
        reserved.append(cost)
        return real(cost)

    budget.reserve = spy  # type: ignore[method-assign]
    picture = webp_claiming(14_000, 14_000)
    for max_pixels in (50_000_000, 250_000_000):
        limits = ImageLimits(max_pixels=max_pixels, max_decode_bytes=1 << 30)
        try:
            budget.pdq_signal(picture, HashOptions(dihedral=True, limits=limits))
        except ImageTooLarge as exc:
            assert "pixels" in str(exc) or "needs about" in str(exc)
        else:
            raise AssertionError("a 196-megapixel WebP was decoded")
    assert reserved == [] and budget.in_use == 0


def test_a_bad_request_is_refused_whole_and_writes_nothing(db_url):
    with running(db_url, max_upload_files=3) as world, world.client("analyst") as analyst:
        before = entries(world)
        one = files_of(GOOD)
        for bad in BAD_TEXT:
            answer = analyst.post("/v1/sets/police/pictures", files=one,
                                  data={"category": f"A{bad}1"})  # fmt: skip
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["error"]["code"] == "invalid_request"
            assert "category" in answer.json()["error"]["message"]
        refused = [
            ("/v1/sets/police/pictures", one, {"category": "x" * 101}, 422),
            ("/v1/sets/police/pictures", one, {"category": ["A1", "A2"]}, 422),
            ("/v1/sets/police/pictures", [], {"category": "A1"}, 422),
            ("/v1/sets/police/pictures", files_of(*[GOOD] * 4), {}, 400),  # over max_upload_files
            ("/v1/sets/police/pictures", one, {"category": "x" * 70_000}, 400),  # over 64 KiB
            ("/v1/sets/police/pictures", one, {f"f{i}": "x" for i in range(9)}, 400),
            ("/v1/sets/nope/pictures", one, {}, 404),
            ("/v1/sets/po%00lice/pictures", one, {}, 404),
            ("/v1/sets/po%1Blice/pictures", one, {}, 404),
            ("/v1/sets/..%2Fpolice/pictures", one, {}, 404),
        ]
        for path, files, data, status in refused:
            answer = analyst.post(path, files=files or None, data=data)
            assert answer.status_code == status, (path, data, answer.text[:300])
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["error"]["message"], path
        not_multipart = analyst.post("/v1/sets/police/pictures", json={"file": "x"})
        assert 400 <= not_multipart.status_code < 500
        assert entries(world) == before
        # the same request, well formed, is taken
        taken = analyst.post("/v1/sets/police/pictures", files=one, data={"category": "A1"})
        assert taken.status_code == 201 and entries(world) == before + 1
        with world.client("platform") as platform:
            assert platform.post("/v1/sets/police/pictures", files=one).status_code == 403


def test_uploads_at_once_do_not_fail_each_other(db_url):
    """Analysts add pictures (some the same) while a platform checks: every request is
    answered, every picture is one entry, every check finds the known picture."""
    pictures = [(f"{name}.jpg", jpeg(photo(name))) for name in
                ("rocket", "chelsea", "astronaut", "camera", "immunohistochemistry")]  # fmt: skip
    failures: list[str] = []
    with running(db_url, loopback=True, rate_per_second=0) as world:
        before = entries(world)

        def analyst(offset: int) -> None:
            with world.client("analyst", timeout=120) as client:
                for turn in range(2):
                    chosen = [pictures[(offset + turn + i) % len(pictures)] for i in range(3)]
                    answer = client.post("/v1/sets/police/pictures", files=files_of(*chosen))
                    if answer.status_code != 201:
                        failures.append(f"analyst {offset}: {answer.status_code} {answer.text}")
                        continue
                    outcomes = {o["outcome"] for o in answer.json()["pictures"]}
                    if not outcomes <= {"added", "unchanged"}:
                        failures.append(f"analyst {offset}: {answer.json()}")

        def platform() -> None:
            with world.client("platform", timeout=120) as client:
                for _ in range(6):
                    files = {"file": ("known.jpg", world.known_jpeg, "image/jpeg")}
                    answer = client.post("/v1/check", files=files)
                    if answer.status_code != 200 or not answer.json()["results"][0]["match"]:
                        failures.append(f"platform: {answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=analyst, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=platform))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert failures == []
        assert entries(world) == before + len(pictures)


def test_the_set_pages_form_refuses_the_same_with_pages(db_url):
    with running(db_url, max_upload_files=3) as world, sign_in(world, "analyst") as browser:
        before = entries(world)
        token = csrf_of(browser.get("/ui/sets/police").text)
        one = files_of(GOOD)
        refused = [
            ("/ui/sets/police/pictures", one, {"category": "A1\x00"}, 422),
            ("/ui/sets/police/pictures", one, {"category": "x" * 101}, 422),
            ("/ui/sets/police/pictures", files_of(*[GOOD] * 4), {}, 400),
            ("/ui/sets/nope/pictures", one, {}, 404),
            ("/ui/sets/po%00lice/pictures", one, {}, 404),
        ]
        for path, files, data, status in refused:
            answer = browser.post(path, files=files, data={"csrf": token, **data})
            assert answer.status_code == status, (path, data, answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html"), path
        no_file = browser.post("/ui/sets/police/pictures", data={"csrf": token, "category": "A1"})
        assert no_file.status_code == 422 and no_file.headers["content-type"].startswith("text/")
        assert entries(world) == before
        sent = files_of(("empty.jpg", b""), ("bomb.png", png_bomb()), GOOD)
        added = browser.post("/ui/sets/police/pictures", files=sent, data={"csrf": token})
        assert added.status_code == 200 and "1 of 3 pictures became entries" in added.text
        assert "<img" not in added.text
        assert entries(world) == before + 1
        with sign_in(world, "platform") as platform:
            token = csrf_of(platform.get("/ui/hits").text)
            answer = platform.post("/ui/sets/police/pictures", files=one, data={"csrf": token})
            assert answer.status_code == 403 and entries(world) == before + 1


def test_ways_refuse_unknown_huge_and_control_character_lists(db_url):
    with running(db_url) as world:
        with world.client("analyst") as analyst:
            refused = [
                ({"off": ["sideways"]}, 422),
                ({"off": ["verified\x00"]}, 422),
                ({"off": ["\x1b[31m"]}, 422),
                ({"off": ["verified"] * 11}, 422),
                ({"off": ["verified"] * 100_000}, 422),
                ({"off": "verified"}, 422),
                ({"off": [["verified"]]}, 422),
                ({"off": ["plain"]}, 400),
                ({"off": ["verified"], "on": ["verified"]}, 400),
                ({"off": ["verified"], "also": 1}, 422),
            ]
            for body, status in refused:
                answer = analyst.put("/v1/sets/police/ways", json=body)
                assert answer.status_code == status, (str(body)[:80], answer.text[:300])
                assert answer.json()["error"]["message"]
            for name in ("nope", "po%00lice", "po%1Blice"):
                answer = analyst.put(f"/v1/sets/{name}/ways", json={"off": ["verified"]})
                assert answer.status_code == 404, name
            assert analyst.get("/v1/sets").json()[0]["ways_off"] == []
            turned = analyst.put("/v1/sets/police/ways", json={"off": ["verified"] * 10})
            assert turned.status_code == 200 and turned.json()["ways_off"] == ["verified"]
        with sign_in(world, "analyst") as browser:
            token = csrf_of(browser.get("/ui/sets/police").text)
            for on in (["sideways"], ["trimmed\x00"], ["plain"], ["trimmed"] * 21):
                answer = browser.post("/ui/sets/police/ways", data={"csrf": token, "on": on})
                assert 400 <= answer.status_code < 500, (on[:2], answer.text[:200])
                assert answer.headers["content-type"].startswith("text/html")
            with world.client("analyst") as analyst:
                assert analyst.get("/v1/sets").json()[0]["ways_off"] == ["verified"]

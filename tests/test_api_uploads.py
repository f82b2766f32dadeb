"""Request bodies and uploaded files within bounds: JSON bodies limited by what a valid check can
be and refused while they arrive, large ones parsed off the event loop, uploaded pictures decoded
within the process's memory budget, and a bad file failing only its own item."""

from __future__ import annotations

import json
import os
import secrets
import select
import socket
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from PIL import Image

from imaging import encode, jpeg, photo
from meldpunt.api import ServiceSettings
from meldpunt.api import routes_check as routes
from meldpunt.api.limits import DecodeBudget
from meldpunt.api.schemas import CHECK_REQUEST, json_body_limit, largest_check_request
from meldpunt.signals import decode_cost, probe_image
from meldpunt.signals.hashing import DEFAULT_MIN_SIDE
from service import running

MD5_ITEM = {"signals": [{"type": "md5", "value": "0" * 32}]}


def large_body(items: int = 1_000) -> bytes:
    """A valid check request well over the size parsed on the event loop."""
    body = json.dumps({"items": [MD5_ITEM] * items}).encode()
    assert len(body) > routes.INLINE_PARSE_BYTES
    return body


# --- the JSON body limit --------------------------------------------------------------------


def test_json_limit_follows_from_the_largest_valid_request():
    largest = largest_check_request()
    CHECK_REQUEST.validate_json(largest)  # it is valid: the limit must let it through
    assert len(largest) < json_body_limit() <= 2 * len(largest)
    assert ServiceSettings(database_url="sqlite://").max_body_bytes == json_body_limit()
    assert json_body_limit() < 16 * 1024 * 1024  # was 64 MiB, whatever a check could be


def test_the_largest_valid_request_is_answered(db_url):
    with running(db_url) as world, world.client() as client:
        response = client.post(
            "/v1/check",
            content=largest_check_request(),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 200, response.text[:300]
    results = response.json()["results"]
    assert len(results) == 1_000 and results[0]["error_code"] == "invalid_url"


def _answer_to_unfinished_body(
    url: str, head: str, *, chunk: bytes, chunks: int, first: bytes = b""
) -> int:
    """Send a chunked body piece by piece and never finish it; return the status the server
    answers with. A server that read the whole body before answering would never answer (the
    socket's timeout fails the test)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + (b"%x\r\n%s\r\n" % (len(first), first) if first else b""))
        for _ in range(chunks):
            if select.select([sock], [], [], 0)[0]:
                break  # answered while the body is still arriving
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b'"}}' not in answer and (piece := sock.recv(65536)):
            answer += piece  # the head and the JSON error (which ends in "}}")
    status = int(answer.split(b" ", 2)[1])
    assert status != 413 or b'"too_large"' in answer
    return status


def _head(path: str, key: str, content_type: str, length: str | None = None) -> str:
    framing = f"Content-Length: {length}" if length else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    )


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "routes"])
def test_oversized_bodies_are_refused_while_they_arrive(db_url, lane: bool):
    limits = {"max_body_bytes": 100_000, "max_multipart_bytes": 300_000, "check_lane": lane}
    with running(db_url, loopback=True, **limits) as world:  # raw sockets
        key = world.keys["platform"]
        json_head = _head("/v1/check", key, "application/json")
        assert (
            _answer_to_unfinished_body(world.url, json_head, chunk=b" " * 10_000, chunks=30) == 413
        )
        # a declared length over the limit is refused before a byte of the body is sent
        declared = _head("/v1/check", key, "application/json", str(10**9))
        assert _answer_to_unfinished_body(world.url, declared, chunk=b"", chunks=0) == 413
        # file uploads have their own, larger limit: a JSON body that large is refused
        form = _head("/v1/check", key, "multipart/form-data; boundary=xyz")
        part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        sent = _answer_to_unfinished_body(
            world.url, form, first=part, chunk=b"-" * 10_000, chunks=60
        )
        assert sent == 413
        with world.client() as client:
            between = client.post("/v1/check", files={"file": ("a.jpg", b"x" * 200_000)})
            assert between.status_code == 200
            assert between.json()["results"][0]["error_code"] == "not_an_image"
            as_json = client.post(
                "/v1/check", content=b" " * 200_000, headers={"content-type": "application/json"}
            )
            assert as_json.status_code == 413


# --- large bodies are parsed off the event loop --------------------------------------------


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "routes"])
def test_health_answers_while_a_large_body_is_parsed(db_url, lane: bool, monkeypatch):
    parsing, health_answered = threading.Event(), threading.Event()
    real_parse = routes.parse_check_json

    def slow_parse(raw: bytes) -> Any:
        if len(raw) > routes.INLINE_PARSE_BYTES:
            parsing.set()
            # parsing holds on until /healthz has answered: on the event loop it never would
            assert health_answered.wait(timeout=30), "/healthz did not answer during the parse"
        return real_parse(raw)

    monkeypatch.setattr(routes, "parse_check_json", slow_parse)
    with running(db_url, check_lane=lane) as world:
        answers: list[int] = []

        def post_large() -> None:
            with world.client() as client:
                answers.append(
                    client.post(
                        "/v1/check",
                        content=large_body(),
                        headers={"content-type": "application/json"},
                    ).status_code
                )

        sender = threading.Thread(target=post_large)
        sender.start()
        assert parsing.wait(timeout=30)
        with world.client(None) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
        health_answered.set()
        sender.join(timeout=60)
    assert answers == [200]


def test_large_parses_run_at_most_so_many_at_once(monkeypatch):
    inside, most = 0, 0
    lock, release = threading.Lock(), threading.Event()
    real_parse = routes.parse_check_json

    def counted_parse(raw: bytes) -> Any:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        release.wait(timeout=30)
        with lock:
            inside -= 1
        return real_parse(raw)

    monkeypatch.setattr(routes, "parse_check_json", counted_parse)

    class State:
        parse_limiter = anyio.CapacityLimiter(2)

    async def four_senders() -> list[int]:
        parsed: list[int] = []

        async def one() -> None:
            queries, _, _ = await routes.read_check_json(State, large_body())
            parsed.append(len(queries))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(one)
                while inside < 2 or State.parse_limiter.statistics().tasks_waiting < 2:
                    await anyio.sleep(0.01)  # two parse, the other two wait their turn
                assert State.parse_limiter.borrowed_tokens == 2
                release.set()
        return parsed

    assert anyio.run(four_senders) == [1_000] * 4
    assert most == 2


# --- uploaded files: one item each ---------------------------------------------------------


def test_a_bad_file_fails_only_its_own_item(db_url):
    small = jpeg(photo("rocket")[:200, :200])
    big_picture = encode(Image.new("RGB", (600, 600), (9, 9, 9)), "PNG")  # over the limit below
    limits = {"max_upload_pixels": 200_000, "max_upload_bytes": 400_000}
    with running(db_url, **limits) as world, world.client() as client:
        assert probe_image(world.known_jpeg).pixels > 200_000
        files = [
            ("a.jpg", small),
            ("noise.jpg", secrets.token_bytes(2000)),
            ("cut.jpg", small[: len(small) // 2]),
            ("known.jpg", world.known_jpeg),  # over the pixel limit, but its MD5 is listed
            ("huge.bin", secrets.token_bytes(400_001)),
            ("big.png", big_picture),
        ]
        response = client.post(
            "/v1/check",
            files=[("file", (name, data, "application/octet-stream")) for name, data in files],
            data={"ref": [f"r{i}" for i in range(len(files))]},
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["ref"] for r in results] == [f"r{i}" for i in range(len(files))]
        assert [r["error_code"] for r in results] == [
            None,
            "not_an_image",
            "corrupt_image",
            "image_too_large",
            "file_too_large",
            "image_too_large",
        ]
        assert [r["match"] for r in results] == [False, False, False, True, False, False]
        assert results[3]["matches"][0]["signal_type"] == "md5"
        assert "known.jpg" in results[3]["error"] and "digests" in results[3]["error"]
        assert "huge.bin" in results[4]["error"] and "400,000" in results[4]["error"]
        # HMA's lookup has no per-item answer: its one file's error is the request's
        hma = client.post("/m/lookup", files={"photo": ("n.jpg", secrets.token_bytes(900))})
        assert hma.status_code == 415 and hma.json()["error"]["code"] == "not_an_image"


def test_decoding_past_the_budget_answers_503_with_retry_after(db_url, monkeypatch):
    from meldpunt.api import limits as limits_module

    picture = jpeg(photo("coffee"))
    cost = decode_cost(probe_image(picture), min_side=DEFAULT_MIN_SIDE)
    decoding, finish = threading.Event(), threading.Event()
    real_pdq = limits_module.pdq_signal

    def held_pdq(data: bytes, options: Any) -> Any:
        decoding.set()
        finish.wait(timeout=30)  # the first picture holds its memory until the test says
        return real_pdq(data, options)

    monkeypatch.setattr(limits_module, "pdq_signal", held_pdq)
    with running(db_url, decode_budget_bytes=cost * 3 // 2) as world:
        answers: list[int] = []

        def upload() -> None:
            with world.client() as client:
                files = {"file": ("a.jpg", picture, "image/jpeg")}
                answers.append(client.post("/v1/check", files=files).status_code)

        first = threading.Thread(target=upload)
        first.start()
        assert decoding.wait(timeout=30)
        with world.client() as client:
            busy = client.post("/v1/check", files={"file": ("b.jpg", picture, "image/jpeg")})
            assert busy.status_code == 503 and busy.headers["Retry-After"].isdigit()
            assert busy.json()["error"]["code"] == "busy"
            finish.set()
            first.join(timeout=60)
            assert answers == [200]  # the budget is given back: the retry is answered
            again = client.post("/v1/check", files={"file": ("b.jpg", picture, "image/jpeg")})
            assert again.status_code == 200 and again.json()["results"][0]["match"] is True


def test_a_picture_needing_more_than_the_whole_budget_is_its_items_error(db_url):
    picture = jpeg(photo("coffee"))
    cost = decode_cost(probe_image(picture), min_side=DEFAULT_MIN_SIDE)
    with running(db_url, decode_budget_bytes=cost - 1) as world, world.client() as client:
        response = client.post("/v1/check", files={"file": ("a.jpg", picture, "image/jpeg")})
    (result,) = response.json()["results"]
    assert result["error_code"] == "image_too_large" and "needs about" in result["error"]
    assert result["match"] is True  # by its MD5, which is listed


# --- memory is bounded while decoding and returned after -----------------------------------

MEMORY_PROBE = """
import sys
from meldpunt.api.limits import DecodeBudget
from meldpunt.signals import HashOptions, ImageLimits, decode_cost, probe_image

def status_mb(field):  # VmRSS: now, VmHWM: this process's peak (ru_maxrss has the parent's)
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) / 1024 for l in status if l.startswith(field + ":"))

data = open(sys.argv[1], "rb").read()
options = HashOptions(dihedral=True, limits=ImageLimits(max_pixels=60_000_000))
cost = decode_cost(probe_image(data, options.limits), min_side=options.min_side)
budget = DecodeBudget(2 * cost)
budget.pdq_signal(open(sys.argv[2], "rb").read(), options)  # warm up: imports, tables
before = status_mb("VmRSS")
for _ in range(4):
    budget.pdq_signal(data, options)
print(cost / 2**20, status_mb("VmHWM") - before, status_mb("VmRSS") - before, budget.in_use)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_decoding_memory_stays_within_its_estimate_and_is_given_back(tmp_path):
    large, small = tmp_path / "flat.webp", tmp_path / "small.png"
    Image.new("RGB", (6000, 4000), (120, 30, 200)).save(large, "WEBP", lossless=True)
    Image.new("RGB", (400, 300), (1, 2, 3)).save(small, "PNG")
    assert large.stat().st_size < 100_000  # 24 megapixels in a few kilobytes
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(large), str(small)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    estimate, grew, kept, in_use = (float(v) for v in out)
    assert 0 < grew <= estimate  # the peak stayed within what was reserved for it
    assert kept < 48  # MB still held after four decodes
    assert in_use == 0


def test_the_budget_lends_what_it_has():
    budget = DecodeBudget(100)
    with budget.reserve(60):
        with pytest.raises(Exception) as refused, budget.reserve(50):
            pass
        assert refused.value.status == 503  # type: ignore[attr-defined]
        with budget.reserve(40):
            assert budget.in_use == 100
    assert budget.in_use == 0
    with budget.reserve(100):  # one picture may take it all
        pass

"""The API's side of edited copies: entries from uploaded pictures, matches that say their way,
a lone hash's estimated orientations (on by default, off per item), ways turned off per set."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from imaging import encode, jpeg, photo
from meldpunt import registry
from meldpunt.signals import HashOptions, pdq_signal
from meldpunt.sim.edits import apply_edit
from service import running


def check_file(client: Any, data: bytes) -> dict[str, Any]:
    response = client.post("/v1/check", files={"file": ("copy.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    return result


def check_hash(client: Any, value: str, **item: Any) -> dict[str, Any]:
    body = {"items": [{"signals": [{"type": "pdq", "value": value, "quality": 100}], **item}]}
    response = client.post("/v1/check", json=body)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    return result


def eventually(probe: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_pictures_become_entries_and_their_edited_copies_match(db_url):
    with running(db_url) as world:
        with world.client("analyst") as analyst:
            created = analyst.post("/v1/sets", json={"name": "pictures"})
            assert created.status_code == 201, created.text
            files = [
                ("file", ("astronaut.jpg", jpeg(photo("astronaut")), "image/jpeg")),
                ("file", ("notes.txt", b"not a picture", "text/plain")),
            ]
            response = analyst.post("/v1/sets/pictures/pictures", files=files,
                                    data={"category": "A1"})  # fmt: skip
            assert response.status_code == 201, response.text
            added, refused = response.json()["pictures"]
            assert (added["outcome"], refused["outcome"]) == ("added", "rejected")
            assert added["signals"] >= 6 and "not an image" in refused["problem"]
        edited, quality = apply_edit("rotate-3+crop-5%", photo("astronaut"), seed=1)
        copy = encode(edited, "JPEG", quality=quality)
        with world.client() as platform:
            assert eventually(lambda: check_file(platform, copy)["match"])
            result = check_file(platform, copy)
            (match,) = result["matches"]
            assert (match["set"], match["way"], match["signal_type"]) == (
                "pictures", "verified", "features"
            )  # fmt: skip
            assert "distance" not in match or match["distance"] is None
        with world.client("analyst") as analyst:
            turned_off = analyst.put("/v1/sets/pictures/ways", json={"off": ["verified"]})
            assert turned_off.status_code == 200, turned_off.text
            assert turned_off.json()["ways_off"] == ["verified"]
            assert analyst.put("/v1/sets/pictures/ways", json={"off": ["plain"]}).status_code == 400
            assert analyst.put("/v1/sets/pictures/ways", json={"off": ["x"]}).status_code == 422
        with world.client() as platform:
            assert eventually(lambda: not check_file(platform, copy)["match"])


def test_a_lone_hash_is_searched_in_its_estimated_orientations(db_url):
    with running(db_url) as world, world.client() as platform:
        mirrored = np.ascontiguousarray(photo("coffee")[:, ::-1])
        value = pdq_signal(jpeg(mirrored), HashOptions(exact=True, trim=False)).hash
        result = check_hash(platform, value)
        (match,) = result["matches"]
        assert (match["set"], match["way"]) == ("police", "orientation")
        assert not check_hash(platform, value, orientations=False)["match"]
        # several PDQ values in one item are its orientations: nothing is estimated then
        plain = check_hash(platform, world.known_pdq)
        assert [m["way"] for m in plain["matches"]] == ["plain"]
        bad = platform.post("/v1/check", json={"items": [{"signals": [], "orientations": 3}]})
        assert bad.status_code == 422


def test_the_set_page_adds_pictures_and_turns_ways(db_url):
    from web_support import csrf_of, sign_in

    with running(db_url) as world, sign_in(world, "analyst") as browser:
        page = browser.get("/ui/sets/police")
        assert "Add pictures" in page.text and "Matches by" in page.text
        token = csrf_of(page.text)
        files = [("file", ("chelsea.jpg", jpeg(photo("chelsea")), "image/jpeg")),
                 ("file", ("empty.jpg", b"", "image/jpeg"))]  # fmt: skip
        added = browser.post("/ui/sets/police/pictures", files=files,
                             data={"csrf": token, "category": "A1"})  # fmt: skip
        assert added.status_code == 200, added.text[:500]
        assert "1 of 2 pictures became entries" in added.text
        assert "<img" not in added.text  # no picture is ever shown
        turned = browser.post("/ui/sets/police/ways", data={"csrf": token, "on": ["trimmed"]},
                              follow_redirects=True)  # fmt: skip
        assert turned.status_code == 200
        assert "orientation (off)" in turned.text and "verified (off)" in turned.text
        refused = browser.post("/ui/sets/police/ways", data={"csrf": token, "on": ["sideways"]})
        assert refused.status_code == 400


def test_a_picture_bomb_is_named_and_the_other_pictures_are_added(db_url):
    import io as _io

    from PIL import Image

    bomb = _io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # 400 megapixels in a few kilobytes
    with running(db_url) as world, world.client("analyst") as analyst:
        files = [("file", ("bomb.png", bomb.getvalue(), "image/png")),
                 ("file", ("rocket.jpg", jpeg(photo("rocket")), "image/jpeg"))]  # fmt: skip
        response = analyst.post("/v1/sets/police/pictures", files=files)
        assert response.status_code == 201, response.text
        bombed, added = response.json()["pictures"]
        assert bombed["outcome"] == "rejected" and "pixels" in bombed["problem"]
        assert bombed["code"] == "image_too_large"
        assert added["outcome"] == "added"
        with world.session() as session:
            entry = registry.get_item(session, added["item_id"])
            assert entry.reference == "rocket.jpg" and entry.status == "active"

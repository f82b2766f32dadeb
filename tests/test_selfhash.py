"""Self-hashing through the API (the page's browser test is tests/test_selfhash_browser.py):
cases, PINs kept as scrypt, the cap, allow-listed pictures refused, rate limits, platforms told
``reviewed: false``, their false positives flagged, withdrawal taking the hashes out."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from meldpunt import checks, registry
from meldpunt.audit_verify import verify_all
from meldpunt.config import load_settings
from meldpunt.registry.selfcases import SELF_SET
from meldpunt.signals import HashOptions, digest_bytes, pdq_signal
from meldpunt.store.models import FalsePositiveReview, SelfCase
from service import World, running
from web_support import csrf_of, sign_in

SAMPLES = Path(registry.__file__).parent.parent / "samples"


def _picture(name: str) -> dict[str, object]:
    data = (SAMPLES / f"{name}.jpg").read_bytes()
    signal = pdq_signal(data, HashOptions(dihedral=True))
    turns = [h for h in (signal.dihedral or ()) if h != signal.hash][:7]
    return {"pdq": signal.hash, "quality": signal.quality, "md5": digest_bytes(data).md5,
            "orientations": turns}  # fmt: skip


def _open(public: httpx.Client, picture: dict[str, object], pin: str) -> str:
    """A new case with one picture; its number."""
    opened = public.post(
        "/v1/protect/cases",
        json={"adult": True, "own_pictures": True, "pin": pin, "pictures": [picture]},
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["number"])


def _check(world: World, pdq: str) -> list[dict[str, object]]:
    with world.client("platform") as client:
        answer = client.post(
            "/v1/check", json={"items": [{"signals": [{"type": "pdq", "value": pdq}]}]}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["results"][0]["matches"]


def _eventually(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the index did not follow in time"
        time.sleep(0.05)


def test_a_case_from_opening_to_withdrawal(db_url: str, tmp_path: Path) -> None:
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url, selfhash_max_pictures=3)
    with running(db_url, project=project) as world, world.client(None) as public:
        chelsea, rocket = _picture("chelsea"), _picture("rocket")
        under = public.post(
            "/v1/protect/cases",
            json={"adult": False, "own_pictures": True, "pin": "482913", "pictures": [chelsea]},
        )
        assert under.status_code == 400 and "/report" in under.json()["error"]["message"]
        weak = public.post(
            "/v1/protect/cases",
            json={"adult": True, "own_pictures": True, "pin": "111111", "pictures": [chelsea]},
        )
        assert weak.status_code == 400
        opened = public.post(
            "/v1/protect/cases",
            json={"adult": True, "own_pictures": True, "pin": "482913", "pictures": [chelsea]},
        )
        assert opened.status_code == 201, opened.text
        number = opened.json()["number"]
        assert [p["pdq"] for p in opened.json()["pictures"]] == [chelsea["pdq"]]
        with world.session() as session:
            row = session.scalar(select(SelfCase).where(SelfCase.number == number))
            assert row is not None and row.pin_hash.startswith("scrypt$")
            assert "482913" not in row.pin_hash

        # platforms match it, and are told nobody at the hotline reviewed it
        _eventually(lambda: bool(_check(world, chelsea["pdq"])))
        (match,) = _check(world, chelsea["pdq"])
        assert match["set"] == SELF_SET and match["category"] == "ncii"
        assert match["reviewed"] is False
        (police,) = _check(world, world.known_pdq)
        assert police["reviewed"] is True
        # a platform's false positive goes to the hotline's review queue
        with world.client("platform") as client:
            done = client.post(
                f"/v1/hits/{match['hit_id']}/outcome",
                json={"outcome": "false_positive", "reason": "not her"},
            )
            assert done.status_code == 200, done.text
        with world.session() as session:
            (review,) = session.scalars(select(FalsePositiveReview)).all()
            assert review.resolved_at is None and review.reason == "not her"

        # coming back with the PIN: see, add (up to the cap), refuse what is allow-listed
        seen = public.post(f"/v1/protect/cases/{number}", json={"pin": "482913"})
        assert seen.status_code == 200 and len(seen.json()["pictures"]) == 1
        added = public.post(
            f"/v1/protect/cases/{number}/pictures", json={"pin": "482913", "pictures": [rocket]}
        )
        assert added.status_code == 200 and len(added.json()["pictures"]) == 2
        many = [
            {**rocket, "pdq": secrets.token_hex(32), "md5": None, "orientations": []}
            for _ in range(2)
        ]
        capped = public.post(
            f"/v1/protect/cases/{number}/pictures", json={"pin": "482913", "pictures": many}
        )
        assert capped.status_code == 400 and "at most 3" in capped.json()["error"]["message"]
        harmless = _picture("coffee")
        with world.session() as session:
            registry.create_set(session, "stock", kind="allowlist")
            registry.add_item(session, "stock", [("pdq", harmless["pdq"])])
            session.commit()
        _caught_up(world, public)
        refused = public.post(
            f"/v1/protect/cases/{number}/pictures", json={"pin": "482913", "pictures": [harmless]}
        )
        assert "known to be harmless" in refused.json()["error"]["message"]
        assert (
            len(
                public.post(f"/v1/protect/cases/{number}", json={"pin": "482913"}).json()[
                    "pictures"
                ]
            )
            == 2
        )

        # withdrawal: the hashes stop matching everywhere
        gone = public.post(f"/v1/protect/cases/{number}/withdraw", json={"pin": "482913"})
        assert gone.status_code == 200 and gone.json()["withdrawn"] is True, gone.text
        assert {p["status"] for p in gone.json()["pictures"]} == {"withdrawn"}
        _eventually(lambda: not _check(world, chelsea["pdq"]))
        assert not _check(world, rocket["pdq"])
        assert (
            public.post(
                f"/v1/protect/cases/{number}/pictures", json={"pin": "482913", "pictures": [rocket]}
            ).status_code
            == 400
        )
        with world.session() as session:  # every change to the set is vouched for
            report = verify_all(session)
            assert report.ok, report.rows[:3]


def _caught_up(world: World, public: httpx.Client) -> None:
    """Wait until the service's index has every change of the registry."""
    with world.session() as session:
        seq = registry.current_seq(session)
    _eventually(lambda: public.get("/readyz").json()["index_change"] >= seq)


def test_wrong_pins_lock_a_case_and_addresses_are_limited(db_url: str, tmp_path: Path) -> None:
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url, selfhash_per_hour=12)
    with running(db_url, project=project) as world, world.client(None) as public:
        picture = _picture("astronaut")
        number = _open(public, picture, "tulip-7391")
        unknown = public.post("/v1/protect/cases/NC-000000-000000", json={"pin": "tulip-7391"})
        assert unknown.status_code == 403
        for _ in range(5):
            wrong = public.post(f"/v1/protect/cases/{number}", json={"pin": "tulip-0000"})
            assert wrong.status_code == 403
            assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
        locked = public.post(f"/v1/protect/cases/{number}", json={"pin": "tulip-7391"})
        assert locked.status_code == 429 and "Retry-After" in locked.headers
        for hostile in ("\x00" * 10, "x" * 500):
            bad = public.post(f"/v1/protect/cases/{number}", json={"pin": hostile})
            assert bad.status_code in (403, 422, 429)
        bad_hash = public.post(
            "/v1/protect/cases",
            json={
                "adult": True,
                "own_pictures": True,
                "pin": "tulip-7391",
                "pictures": [{**picture, "pdq": "zz" * 32}],
            },
        )
        assert bad_hash.status_code == 422
        # 12 requests an hour from one address: the rest get 429
        statuses = [
            public.post(f"/v1/protect/cases/{number}", json={"pin": "x" * 8}).status_code
            for _ in range(5)
        ]
        assert statuses[-1] == 429


def test_a_platforms_false_positive_flags_the_hash_for_the_hotline(db_url: str, tmp_path: Path):
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url)
    with running(db_url, project=project) as world, world.client(None) as public:
        chelsea = _picture("chelsea")
        number = _open(public, chelsea, "482913")
        _eventually(lambda: bool(_check(world, chelsea["pdq"])))
        # a false positive on the hotline's own (reviewed) set first, then on the person's hash
        (police,) = _check(world, world.known_pdq)
        (mine,) = _check(world, chelsea["pdq"])
        assert (police["reviewed"], mine["reviewed"]) == (True, False)
        with world.client("platform") as platform:
            for hit in (police, mine):
                done = platform.post(
                    f"/v1/hits/{hit['hit_id']}/outcome",
                    json={"outcome": "false_positive", "reason": "someone else"},
                )
                assert done.status_code == 200, done.text

        with world.session() as session:
            queue = checks.review_queue(session)
        # the hash nobody at the hotline looked at is flagged, and comes first
        assert [(r.hit_id, r.flagged) for r in queue] == [
            (mine["hit_id"], True),
            (police["hit_id"], False),
        ]
        flagged = queue[0]

        with sign_in(world, "analyst") as analyst:
            assert "of them flagged" in analyst.get("/ui/").text
            page = analyst.get("/ui/reviews").text
            row = page[page.index(f'id="review-{flagged.id}"') :]
            assert "flagged: not reviewed" in row[: row.index("</tr>")]
            other = page[page.index(f'id="review-{queue[1].id}"') :]
            assert "flagged" not in other[: other.index("</tr>")]
            assert chelsea["pdq"] in page  # the hash itself, for the analyst to look at
            # the hotline confirms: the hash stops matching everywhere
            decided = analyst.post(
                f"/ui/reviews/{flagged.id}",
                data={"resolution": "confirmed", "csrf": csrf_of(page)},
            )
            assert decided.status_code == 303, decided.text
        _eventually(lambda: not _check(world, chelsea["pdq"]))

        # the person choosing the same picture again, or withdrawing, does not undo that
        again = public.post(
            f"/v1/protect/cases/{number}/pictures", json={"pin": "482913", "pictures": [chelsea]}
        )
        assert again.status_code == 200, again.text
        assert [p["status"] for p in again.json()["pictures"]] == ["disabled"]
        gone = public.post(f"/v1/protect/cases/{number}/withdraw", json={"pin": "482913"})
        assert [p["status"] for p in gone.json()["pictures"]] == ["disabled"]
        assert not _check(world, chelsea["pdq"])

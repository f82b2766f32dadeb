"""/protect's API against people who mean harm: control characters in every text field, bodies
too large or of the wrong shape, too many hashes, hashes that are not hex, floods of wrong PINs,
guessed case numbers. Each gets a clear 4xx with a JSON error; nothing of anyone's case is lost,
and one caller's flood never fails another person's requests."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt.api.routes_protect import AddressBudget, _address
from meldpunt.api.state import ServiceSettings
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.config import load_settings
from meldpunt.errors import MeldpuntError
from meldpunt.registry import selfcases
from meldpunt.registry.selfcases import Picture
from meldpunt.store.models import SelfCase, SelfCaseItem
from service import World, running

PIN = "tulip-7391"
PICTURE = {"pdq": "a5" * 32, "quality": 90, "md5": "3c" * 16, "orientations": ["5a" * 32]}
CONTROL = ["\x00", "\x1b", "\x7f", "\x85", "\u202e", "\ud800"]


def _opening(**changes: Any) -> dict[str, Any]:
    return {"adult": True, "own_pictures": True, "pin": PIN, "pictures": [PICTURE], **changes}


def _picture(**changes: Any) -> dict[str, Any]:
    return {**PICTURE, **changes}


def _refused(response: httpx.Response, where: object) -> None:
    assert 400 <= response.status_code < 500, (where, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), where
    error = response.json()["error"]
    assert error["code"] and error["message"], where


def _raw(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json"})  # fmt: skip


def _state(world: World) -> tuple[int, int]:
    """How many cases there are, and how many pictures they hold."""
    with world.session() as session:
        cases = session.scalar(select(func.count()).select_from(SelfCase))
        held = session.scalar(select(func.count()).select_from(SelfCaseItem))
        return int(cases or 0), int(held or 0)


def test_hostile_requests_get_a_clear_4xx_and_nothing_is_lost(db_url: str, tmp_path: Path):
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url,
                            selfhash_per_hour=10_000, selfhash_max_pictures=5)  # fmt: skip
    with running(db_url, project=project) as world, world.client(None) as public:
        opened = public.post("/v1/protect/cases", json=_opening())
        assert opened.status_code == 201, opened.text
        number = opened.json()["number"]
        case = f"/v1/protect/cases/{number}"
        before = _state(world)

        hostile: list[tuple[str, str, Any]] = []
        for bad in CONTROL:
            hostile += [
                ("open: pin", "/v1/protect/cases", _opening(pin=f"tu{bad}lip-7391")),
                ("see: pin", case, {"pin": f"{PIN[:3]}{bad}{PIN[3:]}"}),
                ("add: pin", f"{case}/pictures", {"pin": f"{bad}{PIN}", "pictures": [PICTURE]}),
                ("withdraw: pin", f"{case}/withdraw", {"pin": f"{PIN}{bad}"}),
                ("pdq", "/v1/protect/cases", _opening(pictures=[_picture(pdq=bad + "a" * 63)])),
                ("md5", "/v1/protect/cases", _opening(pictures=[_picture(md5=bad + "c" * 31)])),
                ("turned", f"{case}/pictures",
                 {"pin": PIN, "pictures": [_picture(orientations=[f"5a{bad}" + "5a" * 31])]}),
                ("a key", case, {"pin": PIN, f"p{bad}": 1}),
            ]  # fmt: skip
            for quoted in ("%00", "%1B", "%7F", "%C2%85", "%E2%80%AE", "%FF"):
                hostile.append(
                    ("number", f"/v1/protect/cases/NC-{quoted}{number[3:]}", {"pin": PIN})
                )
                hostile.append(
                    ("number", f"/v1/protect/cases/{number}{quoted}/withdraw", {"pin": PIN})
                )
        hostile += [
            ("a long number", "/v1/protect/cases/" + "N" * 5_000, {"pin": PIN}),
            ("a long pin", case, {"pin": "x" * 5_000}),
            ("a pin of another type", case, {"pin": 482913}),
            ("no pin", case, {}),
            ("under 18", "/v1/protect/cases", _opening(adult=False)),
            ("not their own", "/v1/protect/cases", _opening(own_pictures=False)),
            ("'yes' is no declaration", "/v1/protect/cases", _opening(adult="yes")),
            ("1 is no declaration", "/v1/protect/cases", _opening(own_pictures=1)),
            ("a weak pin", "/v1/protect/cases", _opening(pin="111111")),
            ("no pictures", "/v1/protect/cases", _opening(pictures=[])),
            ("more than a case holds", "/v1/protect/cases",
             _opening(pictures=[_picture(pdq=f"{n:064x}", md5=None) for n in range(6)])),
            ("more than a request may carry", f"{case}/pictures",
             {"pin": PIN, "pictures": [PICTURE] * 1_001}),
            ("too many turned hashes", "/v1/protect/cases",
             _opening(pictures=[_picture(orientations=["5a" * 32] * 8)])),
            ("short hex", "/v1/protect/cases", _opening(pictures=[_picture(pdq="a" * 63)])),
            ("long hex", "/v1/protect/cases", _opening(pictures=[_picture(pdq="a" * 65)])),
            ("not hex", "/v1/protect/cases", _opening(pictures=[_picture(pdq="g" * 64)])),
            ("a line", "/v1/protect/cases", _opening(pictures=[_picture(pdq="a" * 64 + "\n")])),
            ("md5 as pdq", "/v1/protect/cases", _opening(pictures=[_picture(pdq="3c" * 16)])),
            ("quality", "/v1/protect/cases", _opening(pictures=[_picture(quality=101)])),
            ("quality", "/v1/protect/cases", _opening(pictures=[_picture(quality=-1)])),
            ("quality", "/v1/protect/cases", _opening(pictures=[_picture(quality=1e308)])),
            ("a picture of another shape", "/v1/protect/cases", _opening(pictures=[[PICTURE]])),
            ("a field too many", "/v1/protect/cases", _opening(pictures=[_picture(name="me.jpg")])),
        ]  # fmt: skip
        for where, path, body in hostile:
            _refused(_raw(public, path, json.dumps(body)), (where, path))

        # bodies that are no JSON object, or no JSON at all
        for where, text in [
            ("nested deep", '{"pin": ' + "[" * 100_000 + "]" * 100_000 + "}"),
            ("an array", "[" + json.dumps({"pin": PIN}) + "]"),
            ("not JSON", "pin=tulip-7391"),
            ("cut off", '{"pin": "tulip-73'),
            ("a lone surrogate", '{"pin": "\\ud800tulip"}'),
            ("empty", ""),
        ]:
            _refused(_raw(public, case, text), where)
        too_big = ServiceSettings(database_url=db_url).max_body_bytes + 1
        large = public.post(case, content=b"{" + b" " * too_big + b"}",
                            headers={"content-type": "application/json"})  # fmt: skip
        assert large.status_code == 413, large.text[:200]

        # nothing was added, nothing lost, no PIN failure counted against the case
        assert _state(world) == before
        seen = public.post(case, json={"pin": PIN})
        assert seen.status_code == 200 and len(seen.json()["pictures"]) == 1
        with world.session() as session:
            row = session.scalar(select(SelfCase).where(SelfCase.number == number))
            assert row is not None and row.pin_failures == 0 and row.locked_until is None
        # the number as a person may type it
        assert public.post(
            f"/v1/protect/cases/%20{number.lower()}%20", json={"pin": PIN}
        ).is_success


def test_a_guessed_number_learns_nothing_and_wrong_pins_lock_for_an_hour(session: Session):
    with use_clock(FrozenClock(datetime(2026, 12, 1, tzinfo=UTC))) as clock:
        view = selfcases.open_case(session, PIN, [Picture("c3" * 32, 90)])
        session.commit()
        checked: list[int] = []
        scrypt = selfcases._scrypt

        def counted(pin: str, salt: bytes, n: int) -> bytes:
            checked.append(n)
            return scrypt(pin, salt, n)

        answers = []
        for number in ("NC-000000-000000", view.number):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(selfcases, "_scrypt", counted)
                with pytest.raises(selfcases.WrongPin) as wrong:
                    selfcases.view_case(session, number, "tulip-0000")
            answers.append((wrong.value.status, str(wrong.value)))
        # the same answer, after the same work: an unknown number is no quicker to tell
        assert answers[0] == answers[1] and answers[0][0] == 403
        assert checked == [2**14, 2**14]
        with pytest.raises(selfcases.InvalidInput):
            selfcases.view_case(session, "NC-\x00", PIN)  # not a number: said so, no query

        for _ in range(selfcases.MAX_PIN_FAILURES - 1):
            with pytest.raises(selfcases.WrongPin):
                selfcases.view_case(session, view.number, "tulip-0000")
        with pytest.raises(selfcases.CaseLocked) as locked:
            selfcases.view_case(session, view.number, PIN)  # the fifth wrong one locked it
        assert locked.value.status == 429 and locked.value.retry_after == 3_601
        clock.advance(timedelta(minutes=61))
        assert selfcases.view_case(session, view.number, PIN).number == view.number
        session.commit()
        assert session.scalar(select(SelfCase.pin_failures)) == 0


def test_pins_checked_at_once_are_bounded(session: Session, monkeypatch: pytest.MonkeyPatch):
    view = selfcases.open_case(session, PIN, [Picture("c3" * 32, 90)])
    session.commit()
    monkeypatch.setattr(selfcases, "_PIN_WAIT_SECONDS", 0.05)
    taken = 0
    while selfcases._PIN_SLOTS.acquire(blocking=False):  # every slot busy
        taken += 1
    try:
        with pytest.raises(selfcases.Busy) as busy:
            selfcases.view_case(session, view.number, PIN)
        assert busy.value.status == 503 and busy.value.retry_after
    finally:
        for _ in range(taken):
            selfcases._PIN_SLOTS.release()
    assert taken == 4
    assert selfcases.view_case(session, view.number, PIN).number == view.number


def test_an_ipv6_network_counts_as_one_caller():
    with use_clock(FrozenClock(datetime(2026, 12, 1, tzinfo=UTC))):
        budget = AddressBudget(per_hour=3)
        for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff:3"):
            budget.take(_address(host))
        with pytest.raises(MeldpuntError) as refused:
            budget.take(_address("2001:db8::4"))
        assert refused.value.status == 429
        budget.take(_address("2001:db8:0:1::1"))  # the next /64 is someone else
        budget.take(_address("::ffff:192.0.2.7"))
        assert _address("::ffff:192.0.2.7") == "192.0.2.7"


def test_one_callers_flood_never_fails_another_persons_case(db_url: str, tmp_path: Path):
    project = load_settings(data_dir=tmp_path / "var", database_url=db_url, selfhash_per_hour=8)
    with running(db_url, loopback=True, project=project) as world:
        failures: list[str] = []
        statuses: list[int] = []

        def flood(address: str) -> None:
            # Addresses of the documentation ranges, as a proxy in front would name them.
            with world.client(None, headers={"X-Forwarded-For": address}) as client:
                for n in range(12):
                    for path, body in (
                        (f"/v1/protect/cases/NC-{n:06X}-000000", {"pin": "guess-0000"}),
                        ("/v1/protect/cases", _opening(pin="\x00" * 8)),
                        ("/v1/protect/cases", _opening(pictures=[PICTURE] * 1_001)),
                    ):
                        try:
                            response = client.post(path, json=body)
                        except httpx.HTTPError as exc:
                            failures.append(f"flood {address}: {exc!r}")
                            continue
                        statuses.append(response.status_code)
                        if not 400 <= response.status_code < 500:
                            failures.append(f"flood {address}: {response.status_code}")

        def person() -> None:
            with world.client(None, headers={"X-Forwarded-For": "198.51.100.20"}) as client:
                steps = [("/v1/protect/cases", _opening(pictures=[_picture(pdq="b4" * 32)]))]
                opened = client.post(*steps[0][:1], json=steps[0][1])
                if opened.status_code != 201:
                    failures.append(f"person: open {opened.status_code} {opened.text[:100]}")
                    return
                case = f"/v1/protect/cases/{opened.json()['number']}"
                for path, body in (
                    (case, {"pin": PIN}),
                    (f"{case}/pictures", {"pin": PIN, "pictures": [_picture(pdq="e1" * 32)]}),
                    (case, {"pin": PIN}),
                    (f"{case}/withdraw", {"pin": PIN}),
                ):
                    answer = client.post(path, json=body)
                    if not answer.is_success:
                        failures.append(f"person: {path} {answer.status_code} {answer.text[:100]}")

        flooders = [threading.Thread(target=flood, args=(a,))
                    for a in ("192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2")]  # fmt: skip
        for thread in flooders:
            thread.start()
        person()
        for thread in flooders:
            thread.join()
        assert failures == []
        # The flood was held back: 8 guesses an hour from each address, and the two IPv6
        # addresses share their /64's. Malformed bodies are refused before they count.
        assert statuses.count(429) == (12 - 8) * 2 + (24 - 8)

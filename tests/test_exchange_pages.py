"""The admin pages of the exchange and the worker's step: adding a partner, pulling now, each
followed set's lag and last failure, setting a partner's new key; the worker pulling when due."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from meldpunt import exchange, registry
from meldpunt.clock import now
from meldpunt.config import load_settings
from meldpunt.exchange.keys import KEY_FILE, instance_key
from meldpunt.exchange.work import run_exchange
from meldpunt.reports.context import HotlineContext
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import PartnerFollow
from service import running, service_settings, serving
from web_support import csrf_of, sign_in


def _source(tmp_path: Path, items: int) -> tuple[str, object]:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    init_db(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as session:
        registry.create_set(session, "police", default_category="csam_baseline")
        for _ in range(items):
            registry.add_item(session, "police", [("pdq", secrets.token_hex(32))])
        session.commit()
    return url, sessions


def test_partners_pages_show_lag_and_failures(db_url: str, tmp_path: Path) -> None:
    source_url, source = _source(tmp_path, 25)
    source_dir = tmp_path / "source"
    project = load_settings(data_dir=source_dir, database_url=source_url)
    with (
        serving(service_settings(source_url, project=project, run_worker=False)) as a_url,
        running(
            db_url, project=load_settings(data_dir=tmp_path / "b", database_url=db_url)
        ) as world,
    ):
        with source() as session:  # type: ignore[operator]
            _, token = exchange.add_partner(
                session,
                "b",
                url="http://127.0.0.1:9",
                public_key=instance_key(tmp_path / "b").public,
                send_sets=["police"],
            )
            session.commit()
        with sign_in(world, "admin") as pages:
            listing = pages.get("/ui/partners")
            assert listing.status_code == 200 and "No partners yet" in listing.text
            assert instance_key(tmp_path / "b").public in listing.text
            added = pages.post(
                "/ui/partners",
                data={
                    "csrf": csrf_of(listing.text),
                    "name": "a",
                    "url": a_url,
                    "public_key": instance_key(source_dir).public,
                    "receive": "police:from-a",
                    "token": token,
                },
            )
            assert added.status_code == 303 and added.headers["location"] == "/ui/partners/a"
            one = pages.get("/ui/partners/a")
            assert "never" in one.text
            pulled = pages.post("/ui/partners/a/pull", data={"csrf": csrf_of(one.text)})
            assert pulled.status_code == 303
            one = pages.get("/ui/partners/a")
            assert "25 changes applied" in one.text
            row = re.search(r"<td>police</td>.*?</tr>", one.text, re.S)
            assert row and ">0<" in row.group(0)  # behind: none

            # the partner's key changes: the pull fails, the pages say so, the new key fixes it
            (source_dir / KEY_FILE).unlink()
            new_key = instance_key(source_dir).public
            failed = pages.post("/ui/partners/a/pull", data={"csrf": csrf_of(one.text)})
            assert failed.status_code == 303
            listing = pages.get("/ui/partners")
            assert "1×" in listing.text and "does not verify" in listing.text
            one = pages.get("/ui/partners/a")
            pages.post(
                "/ui/partners/a/key", data={"csrf": csrf_of(one.text), "public_key": new_key}
            )
            pages.post("/ui/partners/a/pull", data={"csrf": csrf_of(one.text)})
            assert "does not verify" not in pages.get("/ui/partners").text
            bad = pages.post(
                "/ui/partners",
                data={
                    "csrf": csrf_of(one.text),
                    "name": "x\x00y",
                    "url": "ftp://x",
                    "public_key": "nope",
                },
            )
            assert bad.status_code == 303
            assert "NUL character" in pages.get("/ui/partners").text
        with sign_in(world, "analyst") as analyst:
            assert analyst.get("/ui/partners").status_code == 403

        # the worker's step pulls what is due
        with source() as session:  # type: ignore[operator]
            for _ in range(3):
                registry.add_item(session, "police", [("pdq", secrets.token_hex(32))])
            session.commit()
        sessions = make_sessionmaker(make_engine(db_url))
        context = HotlineContext(
            sessions,
            settings=load_settings(
                data_dir=tmp_path / "b", database_url=db_url, exchange_pull_seconds=0.01
            ),
        )
        assert run_exchange(context, 10) == 0  # pulled a moment ago: not due yet
        with sessions() as session:  # a minute later
            session.execute(update(PartnerFollow).values(next_pull_at=now() - timedelta(seconds=1)))
            session.commit()
        assert run_exchange(context, 10) == 3
        with sessions() as session:
            assert (
                len(list(registry.iter_items(session, registry.get_set(session, "from-a")))) == 28
            )

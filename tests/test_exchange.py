"""Two meldpunt instances on loopback following each other's sets (SQLite and PostgreSQL): the
first pull, removals, an entry two partners send, and every page that must be refused: forged,
replayed, signed with a key that changed, cut off half-way."""

from __future__ import annotations

import gzip
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from conftest import _postgres_admin, postgres_test_url
from meldpunt import exchange, registry
from meldpunt.audit_verify import verify_all
from meldpunt.clock import FrozenClock, now, use_clock
from meldpunt.config import load_settings
from meldpunt.exchange import PageRefused
from meldpunt.exchange.feeds import FeedPage, build_page, parse_page
from meldpunt.exchange.keys import KEY_FILE, instance_key
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import EntrySource, Item, ItemSignal, PartnerFollow
from service import service_settings, serving

POLICY = exchange.partner_policy(FetchPolicy())


@dataclass
class Instance:
    name: str
    db_url: str
    data_dir: Path
    url: str = ""
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        init_db(self.db_url)
        self.sessions = make_sessionmaker(make_engine(self.db_url))

    @property
    def key(self) -> str:
        return instance_key(self.data_dir).public

    def session(self) -> Session:
        return self.sessions()


def _pdq() -> str:
    return secrets.token_hex(32)


@contextmanager
def _second_database(db_url: str, tmp_path: Path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    admin = _postgres_admin()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_test_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _served(instance: Instance) -> Iterator[str]:
    project = load_settings(data_dir=instance.data_dir, database_url=instance.db_url)
    settings = service_settings(instance.db_url, project=project, run_worker=False)
    with serving(settings) as url:
        instance.url = url
        yield url


class Proxy:
    """A partner's address that forwards to the real one and can tamper with the answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.pages_left = 0  # in "cut": pages passed before the connection fails
        self.recorded: bytes | None = None
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                proxy.requests.append(self.path)
                if proxy.mode == "cut" and proxy.pages_left <= 0:
                    self.connection.close()  # the partner goes away mid-pull
                    return
                answer = httpx.get(
                    proxy.upstream + self.path,
                    timeout=30,
                    headers={"Authorization": self.headers["Authorization"]},
                )
                body = proxy.tamper(answer.content) if answer.status_code == 200 else answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["content-type"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tamper(self, body: bytes) -> bytes:
        if self.mode == "cut":
            self.pages_left -= 1
            return body
        if self.mode == "record":
            self.recorded = body
        elif self.mode == "replay" and self.recorded is not None:
            return self.recorded
        elif self.mode == "forge":
            line, _, payload = gzip.decompress(body).partition(b"\n")
            forged = payload.replace(b'"csam_baseline"', b'"non_pertinent"', 1)
            assert forged != payload
            return gzip.compress(line + b"\n" + forged)
        return body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _active(instance: Instance, set_name: str) -> set[tuple[str, str]]:
    with instance.session() as session:
        set_id = registry.get_set(session, set_name).id
        rows = session.execute(
            select(ItemSignal.signal_type, ItemSignal.value)
            .join(Item, Item.id == ItemSignal.item_id)
            .where(ItemSignal.set_id == set_id, Item.status == "active")
        )
        return {(kind, value) for kind, value in rows}


def _follow(instance: Instance, partner: str, remote_set: str) -> PartnerFollow:
    with instance.session() as session:
        info = exchange.get_partner(session, partner)
        follow_id = next(f.id for f in info.follows if f.remote_set == remote_set)
        row = session.get(PartnerFollow, follow_id)
        assert row is not None
        return row


def _pull(instance: Instance, partner: str, limit: int = 7) -> list[exchange.FollowResult]:
    return exchange.pull(instance.sessions, partner, POLICY, limit=limit)


def test_two_instances_follow_each_other(db_url: str, tmp_path: Path) -> None:
    with _second_database(db_url, tmp_path) as second_url:
        a = Instance("a", db_url, tmp_path / "a")
        b = Instance("b", second_url, tmp_path / "b")
        police = [(_pdq(), secrets.token_hex(16)) for _ in range(30)]
        with a.session() as session:
            registry.create_set(session, "police", default_category="csam_baseline")
            registry.create_set(session, "mirror", default_category="csam_baseline")
            registry.create_set(session, "private", default_category="csam_baseline")
            for pdq, md5 in police:
                registry.add_item(session, "police", [("pdq", pdq), ("md5", md5)])
            registry.add_item(session, "mirror", [("pdq", police[0][0])])  # also in police
            registry.add_item(session, "private", [("pdq", _pdq())])
            session.commit()
        with b.session() as session:
            registry.create_set(session, "be-list", default_category="csam_national")
            for _ in range(5):
                registry.add_item(session, "be-list", [("pdq", _pdq())])
            session.commit()
        with _served(a), _served(b):
            proxy = Proxy(a.url)
            try:
                _scenario(a, b, proxy)
            finally:
                proxy.close()


def _scenario(a: Instance, b: Instance, proxy: Proxy) -> None:
    # --- linking: each side adds the other, with its key, rules and the token it was given
    with a.session() as session:
        _, token_for_b = exchange.add_partner(
            session,
            "b",
            url=b.url,
            public_key=b.key,
            send_sets=["police", "mirror"],
            receive=[("be-list", "from-b")],
        )
        session.commit()
    with b.session() as session:
        _, token_for_a = exchange.add_partner(
            session,
            "a",
            url=proxy.url,
            public_key=a.key,
            send_sets=["be-list"],
            remote_token=token_for_b,
            receive=[("police", "from-a")],
        )
        # the same instance once more, as a second partner sending its mirror into the same set
        exchange.add_partner(
            session,
            "a-mirror",
            url=a.url,
            public_key=a.key,
            remote_token=token_for_b,
            receive=[("mirror", "from-a")],
        )
        session.commit()
    with a.session() as session:
        exchange.update_partner(session, "b", remote_token=token_for_a)
        session.commit()
    assert token_for_b and token_for_a

    # --- the first pull, in pages of 7: everything arrives, with provenance
    (result,) = _pull(b, "a")
    assert result.error is None and result.pages == 9 and result.changes == 60  # 61 rows
    assert _active(b, "from-a") == _active(a, "police")
    (mirror,) = _pull(b, "a-mirror")
    assert mirror.error is None
    (back,) = _pull(a, "b")
    assert back.error is None and _active(a, "from-b") == _active(b, "be-list")
    with b.session() as session:
        shared = registry.find_items(session, "pdq", a_pdq := sorted(_active(a, "mirror"))[0][1])
        (item,) = [i for i in shared if i.set_id == registry.get_set(session, "from-a").id]
        sources = session.scalars(select(EntrySource).where(EntrySource.item_id == item.id)).all()
        assert {s.remote_set for s in sources} == {"police", "mirror"}  # one entry, two sources
        assert session.scalar(select(func.count()).select_from(EntrySource)) == 31
        assert exchange.get_partner(session, "a").follows[0].behind == 0
    # the set not shared never travels, and an API key is not a partner's token
    with httpx.Client(base_url=a.url) as client:
        answer = client.get("/v1/feeds/private", headers={"Authorization": f"Bearer {token_for_a}"})
        assert answer.status_code == 403
        assert client.get("/v1/feeds/police").status_code == 401
        bad = client.get("/v1/feeds/police", headers={"Authorization": "Bearer mpx_wrong"})
        assert bad.status_code == 403
        as_b = {"Authorization": f"Bearer {token_for_a}"}
        for hostile, status in [("police?after=-1", 422), ("police?limit=0", 422),
                                ("police?after=99999999999999999999999", 422),
                                ("po%00lice", 403), ("..%2F..%2Fetc", 404)]:  # fmt: skip
            assert client.get(f"/v1/feeds/{hostile}", headers=as_b).status_code == status, hostile

    # --- removals travel; an entry another partner still sends stays
    with a.session() as session:
        police_set = registry.get_set(session, "police")
        ids = {i.signals[0][1]: i.id for i in registry.iter_items(session, police_set)}
        registry.withdraw_item(session, ids[a_pdq], reason="wrongly classified")
        registry.withdraw_item(session, ids[sorted(ids)[-1]], reason="wrongly classified")
        session.commit()
    _pull(b, "a")
    # the entry the mirror still sends stays, as one item: with the signals it has here
    with a.session() as session:
        (withdrawn,) = [
            i for i in registry.find_items(session, "pdq", a_pdq) if i.set_id == police_set.id
        ]
    assert _active(b, "from-a") == _active(a, "police") | set(withdrawn.signals)
    with a.session() as session:
        mirror_item = registry.find_items(session, "pdq", a_pdq)
        registry.delete_item(session, next(i.id for i in mirror_item if i.status == "active"))
        session.commit()
    _pull(b, "a-mirror")
    assert _active(b, "from-a") == _active(a, "police")

    # --- a forged page: refused whole, saying why; nothing of it applied
    with a.session() as session:
        registry.add_item(session, "police", [("pdq", _pdq())])
        session.commit()
    before = _follow(b, "a", "police").after_seq
    proxy.mode = "forge"
    (refused,) = _pull(b, "a")
    assert refused.error and "signature does not verify" in refused.error
    follow = _follow(b, "a", "police")
    assert follow.after_seq == before and follow.failures == 1
    assert follow.last_error == refused.error
    assert _active(b, "from-a") != _active(a, "police")
    proxy.mode = "pass"
    assert _pull(b, "a")[0].error is None
    assert _active(b, "from-a") == _active(a, "police")
    assert _follow(b, "a", "police").failures == 0

    # --- a replayed page: an old, validly signed page answers another question
    proxy.mode = "record"
    _pull(b, "a")  # records the (empty) page after the current position
    with a.session() as session:
        registry.add_item(session, "police", [("pdq", _pdq())])
        session.commit()
    _pull(b, "a", limit=1)
    proxy.mode = "replay"
    with a.session() as session:
        registry.add_item(session, "police", [("pdq", _pdq())])
        session.commit()
    (replayed,) = _pull(b, "a")
    assert replayed.error and "sent again" in replayed.error
    proxy.mode = "pass"
    assert _pull(b, "a")[0].error is None
    assert _active(b, "from-a") == _active(a, "police")

    # --- the partner's key changed: refused until the new key is confirmed and set
    (a.data_dir / KEY_FILE).unlink()
    new_key = a.key  # made anew on first use
    with a.session() as session:
        registry.add_item(session, "police", [("pdq", _pdq())])
        session.commit()
    (changed,) = _pull(b, "a")
    assert changed.error and "changed its key" in changed.error
    with b.session() as session:
        exchange.update_partner(session, "a", public_key=new_key)
        session.commit()
    assert _pull(b, "a")[0].error is None
    assert _active(b, "from-a") == _active(a, "police")

    # --- an interrupted pull: the pages applied stay, the next pull resumes after them
    with a.session() as session:
        for _ in range(20):
            registry.add_item(session, "police", [("pdq", _pdq())])
        session.commit()
    proxy.mode, proxy.pages_left = "cut", 2
    start = _follow(b, "a", "police").after_seq
    (cut,) = _pull(b, "a", limit=5)
    assert cut.error and "could not be reached" in cut.error
    middle = _follow(b, "a", "police").after_seq
    assert middle > start  # two pages applied
    assert len(_active(b, "from-a")) == len(_active(a, "police")) - 10
    proxy.mode = "pass"
    asked = len(proxy.requests)
    (resumed,) = _pull(b, "a", limit=5)
    assert resumed.error is None and f"after={middle}" in proxy.requests[asked]
    assert _active(b, "from-a") == _active(a, "police")
    with b.session() as session:
        (info,) = [f for f in exchange.get_partner(session, "a").follows]
        assert info.behind == 0 and info.last_error is None
    # everything received went through the registry's own writes: the audit log vouches for it
    for instance in (a, b):
        with instance.session() as session:
            report = verify_all(session)
            assert report.ok, (instance.name, report.rows[:3])


def test_a_page_sent_again_later_is_refused_as_old(session: Session, tmp_path: Path) -> None:
    registry.create_set(session, "police")
    registry.add_item(session, "police", [("pdq", _pdq())])
    key = instance_key(tmp_path)
    info, _ = exchange.add_partner(
        session, "p", url="http://127.0.0.1:1", public_key=key.public, send_sets=["police"]
    )
    with use_clock(FrozenClock(now())) as clock:
        body = build_page(session, key, info, "police", after=0)
        page = parse_page(body, partner="p", public_key=key.public, set_name="police", after=0)
        assert len(page.changes) == 1
        clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
        with pytest.raises(PageRefused, match="old page sent again"):
            parse_page(body, partner="p", public_key=key.public, set_name="police", after=0)


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not gzip", "not gzip"),
        (_gz(b"no signature line"), "no signature line"),
        (_gz(b"\x00\x00\n{}"), "not base64"),
        (_gz(b"A" * 88 + b"\n{}"), "does not verify"),
        (_gz(b"x" * 10)[:-4], "cut off"),
    ],
    ids=["not-gzip", "no-signature", "bad-base64", "bad-signature", "cut-off"],
)
def test_hostile_pages_are_refused_with_a_reason(body: bytes, why: str, tmp_path: Path) -> None:
    key = instance_key(tmp_path)
    with pytest.raises(PageRefused, match=why):
        parse_page(body, partner="p", public_key=key.public, set_name="s", after=0)


def _columns(rows: list[list[object]]) -> dict[str, list[object]]:
    """Changes as a page's columns: numbers and entries as differences from the one before."""
    names = ("seq", "entry", "action", "type", "value", "category", "reason")
    out: dict[str, list[object]] = {name: [] for name in names}
    seq, entry = 0, 0
    for row in rows:
        out["seq"].append(row[0] - seq)  # type: ignore[operator]
        out["entry"].append(row[1] - entry)  # type: ignore[operator]
        seq, entry = row[0], row[1]  # type: ignore[assignment]
        for name, value in zip(names[2:], row[2:], strict=True):
            out[name].append(value)
    return out


def test_a_page_with_changes_out_of_order_or_bad_content_is_refused(tmp_path: Path) -> None:
    import base64

    import orjson

    key = instance_key(tmp_path)
    good = [1, 7, "add", "pdq", _pdq(), "csam", "imported"]

    def signed(changes: object) -> bytes:
        page = {
            "format": "meldpunt-feed/1",
            "key": key.fingerprint,
            "set": "s",
            "after": 0,
            "issued_at": now().isoformat(),
            "head": 9,
            "head_at": None,
            "last": 9,
            "last_at": None,
            "more": False,
            "changes": changes,
        }
        payload = orjson.dumps(page)
        return gzip.compress(base64.b64encode(key.sign(payload)) + b"\n" + payload)

    def parse(body: bytes) -> FeedPage:
        return parse_page(body, partner="p", public_key=key.public, set_name="s", after=0)

    assert parse(signed(_columns([good]))).changes[0].entry == 7
    two = parse(signed(_columns([good, [3, 5, "remove", "md5", "a" * 32, "csam", "x"]])))
    assert [(c.seq, c.entry, c.action) for c in two.changes] == [(1, 7, "add"), (3, 5, "remove")]
    for changes, why in [
        (_columns([[2, *good[1:]], [2, *good[1:]]]), "out of order"),
        (_columns([[0, *good[1:]]]), "out of order"),
        (_columns([[1, 7, "add", "pdq", "zz", "csam", "x"]]), "change 1"),
        (_columns([[1, 7, "add", "pdq", _pdq(), "nonsense", "x"]]), "unknown category"),
        (_columns([[1, 7, "explode", "pdq", _pdq(), "csam", "x"]]), "unknown action"),
        (_columns([[1, 7, "add", "md5", "\x00" * 32, "csam", "x"]]), "change 1"),
        (_columns([[1, -7, "add", "pdq", _pdq(), "csam", "x"]]), "entry"),
        ({**_columns([good]), "seq": []}, "differ in length"),
        ([[1, 7]], "columns"),
        ({"seq": [1]}, "columns"),
    ]:
        with pytest.raises(PageRefused, match=why):
            parse(signed(changes))

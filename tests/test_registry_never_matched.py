"""What a list may hold but never makes a platform act: entries assessed as not pertinent, and
the digests of empty content (SQLite and PostgreSQL; `meldpunt match` on SQLite)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from imaging import jpeg, photo
from meldpunt import registry
from meldpunt.registry.matching import Matcher, Query
from meldpunt.signals import pdq_signal
from meldpunt.store import init_db, make_engine, make_sessionmaker
from meldpunt.store.models import ItemSignal

EMPTY = {name: hashlib.new(name, b"").hexdigest() for name in ("md5", "sha1", "sha256")}


def test_non_pertinent_entries_never_match_but_other_categories_do(session):
    block = registry.create_set(session, "mixed-list")
    by_category = {}
    for code in ("csam_baseline", "non_pertinent", "unknown", "uncategorised"):
        digest = secrets.token_hex(16)
        registry.add_item(
            session, block, [("md5", digest)], category=code, category_scheme="meldpunt"
        )
        by_category[code] = digest
    session.commit()
    matcher = Matcher.build(session)

    def known(code: str, **filters: object) -> bool:
        return matcher.match(Query(md5=by_category[code]), **filters).known  # type: ignore[arg-type]

    assert known("csam_baseline")
    assert not known("non_pertinent")
    assert not known("non_pertinent", categories=frozenset({"non_pertinent"}))  # not even asked
    # unassessed entries still match where someone asks for them (a subscription must name them)
    assert known("unknown") and known("uncategorised")
    assert not known("unknown", categories=registry.SUBSCRIBED_BY_DEFAULT)


@pytest.mark.parametrize("kind", sorted(EMPTY))
def test_the_digest_of_empty_content_is_refused(session, kind):
    block = registry.create_set(session, "police")
    with pytest.raises(registry.InvalidInput, match="digest of empty content"):
        registry.add_item(session, block, [(kind, EMPTY[kind].upper())])
    with pytest.raises(registry.InvalidInput, match="empty content"):  # also beside a good one
        registry.add_item(session, block, [("md5", secrets.token_hex(16)), (kind, EMPTY[kind])])


def test_an_import_reports_empty_digests_as_refused_lines_and_keeps_the_rest(session):
    block = registry.create_set(session, "police")
    session.commit()
    good = secrets.token_hex(16)
    text = f"md5 {good}\nmd5 {EMPTY['md5']}\nsha256 {EMPTY['sha256']}\n"
    summary = registry.import_stream(session, block.name, io.BytesIO(text.encode()), format="plain")
    assert summary.added == 1 and summary.rejected == 2
    assert [p.number for p in summary.problems] == [2, 3]
    assert all("digest of empty content" in p.reason for p in summary.problems)
    stored = session.scalars(select(ItemSignal.value)).all()
    assert stored == [good]


def test_empty_digests_already_in_a_list_are_not_matched(session):
    """Entries from before the rule stay in the registry but never answer."""
    block = registry.create_set(session, "police")
    item = registry.add_item(session, block, [("md5", secrets.token_hex(16))]).item
    session.commit()
    matcher = Matcher.build(session)
    matcher._add("md5", EMPTY["md5"], block.id, item.id, matcher._code("csam_baseline"))
    assert matcher.exact["md5"][0].lookup(bytes.fromhex(EMPTY["md5"]))  # it is in the index
    assert not matcher.match(Query(md5=EMPTY["md5"])).known


def test_meldpunt_match_never_reports_a_non_pertinent_entry(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'meldpunt.db'}"
    init_db(url)
    engine = make_engine(url)
    picture = tmp_path / "assessed.jpg"
    picture.write_bytes(jpeg(photo("coffee")))
    with make_sessionmaker(engine)() as session:
        block = registry.create_set(session, "vics-import")
        # VICS category 5: assessed, not pertinent
        registry.add_item(session, block, [("pdq", pdq_signal(picture).hash)], category="5",
                          category_scheme="vic:vics")  # fmt: skip
        session.commit()
    engine.dispose()
    env = {**os.environ, "MELDPUNT_DATABASE_URL": url, "MELDPUNT_DATA_DIR": str(tmp_path / "var")}
    command = [sys.executable, "-m", "meldpunt.cli", "match", str(picture), "-f", "jsonl"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"known": false' in done.stdout and "vics-import" not in done.stdout

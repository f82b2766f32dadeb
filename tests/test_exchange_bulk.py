"""The follower's set-wise path for new entries (``registry.bulk``), on SQLite and PostgreSQL.

Source and follower share one database here: the source's set ``police`` and the set it is
followed into, ``from-a``, are different sets, and one partner row both sends and receives, so
that pages are built, signed, checked and applied exactly as between two instances
(``test_exchange.py`` runs two on loopback), without a server in between.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import astuple
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meldpunt import exchange, registry
from meldpunt.audit_verify import verify_all
from meldpunt.exchange import applying
from meldpunt.exchange.applying import apply_page, merged
from meldpunt.exchange.feeds import MAX_PAGE, FeedPage, build_page, parse_page
from meldpunt.exchange.keys import InstanceKey, instance_key
from meldpunt.registry.bulk import NewEntries, add_new_entries, normalize_column
from meldpunt.registry.changes import ChangeRow, changes_since, current_seq
from meldpunt.registry.matching import Matcher, Query
from meldpunt.registry.trail import change_line, changes_digest
from meldpunt.store.bulk import large_cache
from meldpunt.store.models import EntrySource, Item, ItemSignal, Partner, PartnerFollow


def _pdq() -> str:
    return secrets.token_hex(32)


def _link(session: Session, key: InstanceKey, name: str, remote: str, ours: str) -> None:
    exchange.add_partner(session, name, url="http://127.0.0.1:9", public_key=key.public,
                         send_sets=[remote], receive=[(remote, ours)])  # fmt: skip
    session.commit()


def _page(session: Session, key: InstanceKey, name: str, follow: PartnerFollow) -> FeedPage:
    info = exchange.get_partner(session, name)
    body = build_page(session, key, info, follow.remote_set, after=follow.after_seq, limit=MAX_PAGE)
    return parse_page(body, partner=name, public_key=key.public, set_name=follow.remote_set,
                      after=follow.after_seq)  # fmt: skip


def _follow(session: Session, name: str) -> tuple[PartnerFollow, Partner]:
    partner = session.scalar(select(Partner).where(Partner.name == name))
    assert partner is not None
    follow = session.scalar(select(PartnerFollow).where(PartnerFollow.partner_id == partner.id))
    assert follow is not None
    return follow, partner


def _pull(session: Session, key: InstanceKey, name: str) -> FeedPage:
    """One page of the partner's set, applied and committed as ``pull_follow`` does."""
    follow, partner = _follow(session, name)
    page = _page(session, key, name, follow)
    apply_page(session, follow, partner, page)
    session.commit()
    return page


def _active(session: Session, set_name: str) -> set[str]:
    set_id = registry.get_set(session, set_name).id
    rows = session.scalars(
        select(ItemSignal.value)
        .join(Item, Item.id == ItemSignal.item_id)
        .where(ItemSignal.set_id == set_id, Item.status == "active")
    )
    return set(rows)


def _fill(session: Session, set_name: str, values: list[str]) -> None:
    for value in values:
        registry.add_item(session, set_name, [("pdq", value)])
    session.commit()


@pytest.fixture
def key(tmp_path: Path) -> InstanceKey:
    return instance_key(tmp_path)


def test_a_first_pull_goes_set_wise_with_sources_change_numbers_and_audit(
    session: Session, key: InstanceKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    values = [_pdq() for _ in range(40)]
    _fill(session, "police", values)
    _link(session, key, "a", "police", "from-a")
    general = []
    monkeypatch.setattr(applying, "apply_items", lambda *a, **k: general.append(a))
    before = current_seq(session)
    page = _pull(session, key, "a")
    assert general == []  # nothing went the general way
    assert _active(session, "from-a") == set(values)
    ours = registry.get_set(session, "from-a")
    rows = [c for c in changes_since(session, before) if c.set_id == ours.id]
    # the partner's set's facts were taken over (its default category): one set-wide change
    assert [c.reason for c in rows if c.is_set_change] == ["set_updated"]
    assert ours.default_category == "csam_baseline"
    rows = [c for c in rows if not c.is_set_change]
    assert [c.value for c in rows] == values  # one numbered change a signal, in the page's order
    assert {(c.action, c.reason, c.category) for c in rows} == {("add", "added", "csam_baseline")}
    sources = session.scalars(select(EntrySource).order_by(EntrySource.remote_item)).all()
    assert len(sources) == 40 and all(s.active for s in sources)
    assert [s.remote_item for s in sources] == sorted(page.columns.entry)
    items = {i.id: i for i in session.scalars(select(Item).where(Item.set_id == ours.id))}
    assert all(items[s.item_id].reference == f"a:{s.remote_item}" for s in sources)
    # the ids go on after the bulk's: a later write does not reuse them
    later = registry.add_item(session, "from-a", [("pdq", _pdq())]).item
    assert later.id > max(items)
    session.commit()
    assert verify_all(session).ok


def test_two_partners_sending_the_same_entries_give_one_entry_with_two_sources(
    session: Session, key: InstanceKey
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    registry.create_set(session, "mirror", default_category="csam_national")
    both = [_pdq() for _ in range(30)]
    only_mirror = [_pdq() for _ in range(10)]
    _fill(session, "police", both)
    _fill(session, "mirror", both[:15] + only_mirror)
    _link(session, key, "a", "police", "from-a")
    _link(session, key, "b", "mirror", "from-a")
    _pull(session, key, "a")
    _pull(session, key, "b")  # 15 of its entries are ours already: merged, not added again
    assert _active(session, "from-a") == set(both + only_mirror)
    ours = registry.get_set(session, "from-a").id
    assert session.scalar(select(func.count()).select_from(Item).where(Item.set_id == ours)) == 40
    per_item = session.execute(
        select(EntrySource.item_id, func.count()).group_by(EntrySource.item_id)
    ).all()
    assert sorted(n for _, n in per_item).count(2) == 15 and len(per_item) == 40
    assert verify_all(session).ok


def test_a_page_that_fails_half_way_applies_nothing(
    session: Session, key: InstanceKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    _fill(session, "police", [_pdq() for _ in range(25)])
    _link(session, key, "a", "police", "from-a")
    seq, items = current_seq(session), session.scalar(select(func.count()).select_from(Item))
    real = applying.insert_rows

    def broken(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")  # after the items, signals and change rows were written

    monkeypatch.setattr(applying, "insert_rows", broken)
    with pytest.raises(OSError, match="disk full"):
        follow, partner = _follow(session, "a")
        apply_page(session, follow, partner, _page(session, key, "a", follow))
    session.rollback()
    assert current_seq(session) == seq
    assert session.scalar(select(func.count()).select_from(Item)) == items
    assert session.scalar(select(func.count()).select_from(EntrySource)) == 0
    assert _follow(session, "a")[0].after_seq == 0
    monkeypatch.setattr(applying, "insert_rows", real)
    _pull(session, key, "a")  # the same page again, whole
    assert _active(session, "from-a") == _active(session, "police")
    assert verify_all(session).ok


def test_removals_after_a_bulk_add_and_a_matcher_following_along(
    session: Session, key: InstanceKey
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    values = [_pdq() for _ in range(20)]
    _fill(session, "police", values)
    _link(session, key, "a", "police", "from-a")
    matcher = Matcher.build(session)  # running before the pull, as the service's is
    _pull(session, key, "a")
    matcher.refresh(session)
    ours = registry.get_set(session, "from-a").id
    found = matcher.match(Query(pdq=values[3], pdq_quality=100))
    assert ours in {m.set_id for m in found.matches}
    police = {i.signals[0][1]: i.id for i in registry.iter_items(session, "police")}
    for value in values[:5]:
        registry.withdraw_item(session, police[value], reason="wrongly classified")
    session.commit()
    _pull(session, key, "a")
    assert _active(session, "from-a") == set(values[5:])
    matcher.refresh(session)
    assert ours not in {
        m.set_id for m in matcher.match(Query(pdq=values[3], pdq_quality=100)).matches
    }
    assert ours in {m.set_id for m in matcher.match(Query(pdq=values[9], pdq_quality=100)).matches}
    # sent again after the removal: the same item, enabled again
    registry.enable_item(session, police[values[3]])
    session.commit()
    _pull(session, key, "a")
    assert values[3] in _active(session, "from-a")
    ours_items = session.scalar(select(func.count()).select_from(Item).where(Item.set_id == ours))
    assert ours_items == 20
    assert verify_all(session).ok


def test_an_entry_the_set_holds_already_is_merged_and_the_rest_go_set_wise(
    session: Session, key: InstanceKey
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    values = [_pdq() for _ in range(12)]
    md5 = secrets.token_hex(16)
    registry.add_item(session, "police", [("pdq", values[0]), ("md5", md5)])
    _fill(session, "police", values[1:])
    _link(session, key, "a", "police", "from-a")
    mine = registry.add_item(session, "from-a", [("md5", md5)]).item  # our own, before the pull
    session.commit()
    _pull(session, key, "a")
    assert _active(session, "from-a") == set(values) | {md5}
    merged = registry.get_item(session, mine.id)
    assert set(merged.signals) == {("pdq", values[0]), ("md5", md5)}
    source = session.scalar(select(EntrySource).where(EntrySource.item_id == mine.id))
    assert source is not None and source.active
    assert verify_all(session).ok


def test_a_sets_reviewed_flag_category_and_state_travel(session: Session, key: InstanceKey) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    _fill(session, "police", [_pdq()])
    _link(session, key, "a", "police", "from-a")
    _pull(session, key, "a")
    assert registry.get_set(session, "from-a").reviewed
    registry.update_set(session, "police", reviewed=False, default_category="csam_national")
    registry.disable_set(session, "police")
    session.commit()
    page = _pull(session, key, "a")
    assert [reason for _, reason in page.set_changes] == ["set_updated", "set_disabled"]
    ours = registry.get_set(session, "from-a")
    assert (ours.reviewed, ours.default_category, ours.state) == (
        False,
        "csam_national",
        "disabled",
    )
    # our own decision stands until the partner's next change
    registry.enable_set(session, "from-a")
    session.commit()
    _fill(session, "police", [_pdq()])
    _pull(session, key, "a")
    assert registry.get_set(session, "from-a").state == "active"
    registry.disable_set(session, "from-a")  # and again: the partner's enabling wakes it
    session.commit()
    registry.enable_set(session, "police")
    registry.update_set(session, "police", reviewed=True)
    session.commit()
    _pull(session, key, "a")
    ours = registry.get_set(session, "from-a")
    assert (ours.reviewed, ours.state) == (True, "active")
    assert verify_all(session).ok


def test_the_set_wise_write_leaves_out_entries_whose_signals_the_set_holds(
    session: Session,
) -> None:
    registry.create_set(session, "s", default_category="csam_baseline")
    held_md5 = secrets.token_hex(16)
    registry.add_item(session, "s", [("md5", held_md5)])
    session.commit()
    first, second, third = _pdq(), _pdq(), _pdq()
    category = registry.classify("csam_baseline", "meldpunt")
    entries = NewEntries(
        references=["x:1", "x:2", None],
        categories=[category] * 3,
        owners=[0, 0, 1, 2],
        signal_types=["pdq", "md5", "pdq", "pdq"],
        values=[first, held_md5, second, third],
    )
    result = add_new_entries(session, "s", entries, actor="test")
    session.commit()
    assert result.refused == [0] and list(result.added) == [1, 2]
    assert result.seqs is not None and result.seqs[1] - result.seqs[0] == 1
    assert _active(session, "s") == {held_md5, second, third}  # nothing of the first entry
    with pytest.raises(registry.InvalidInput, match="twice"):
        add_new_entries(session, "s", NewEntries(["a", "b"], [category] * 2, [0, 1],
                                                 ["pdq", "pdq"], [first, first]))  # fmt: skip
    assert verify_all(session).ok


def test_columns_digest_is_the_change_rows_digest() -> None:
    rows = [ChangeRow(3, 10 + i, "add", "pdq", _pdq(), "csam_baseline", "added") for i in range(50)]
    rows += [
        ChangeRow(3, None, "update", None, None, None, "set_updated"),
        ChangeRow(4, 7, "remove", "photodna", 'a"b\\c\u2028é', "csam", "withdrawn"),
    ]
    seqs = list(range(100, 100 + len(rows)))

    def by_line(count: int) -> str:
        lines = (
            change_line(q, *astuple(r)) for q, r in zip(seqs[:count], rows[:count], strict=True)
        )
        return hashlib.sha256(b"".join(lines)).hexdigest()

    assert changes_digest(rows, seqs) == by_line(len(rows))  # escapes: one line at a time
    assert changes_digest(rows[:50], seqs[:50]) == by_line(50)  # one format string


def test_columns_are_checked_at_once_and_named_one_by_one_when_they_do_not_fit() -> None:
    value = _pdq()
    assert normalize_column("pdq", [value, _pdq()])
    assert not normalize_column("pdq", [value.upper()])  # valid, but not in normal form
    assert not normalize_column("pdq", [value[:-1]])
    assert not normalize_column("pdq_hash", [value])  # an alias: normalised to another name
    assert not normalize_column("md5", ["d41d8cd98f00b204e9800998ecf8427e"])  # empty content
    assert not normalize_column("nonsense", [value])
    assert normalize_column("photodna", ["QUJD"])
    assert not normalize_column("photodna", ["not base64!"])


def test_a_page_with_entries_changed_in_it_and_categories_not_taken_in(
    session: Session, key: InstanceKey
) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    two = (_pdq(), secrets.token_hex(16))
    item = registry.add_item(session, "police", [("pdq", two[0]), ("md5", two[1])]).item
    gone = registry.add_item(session, "police", [("pdq", _pdq())]).item
    registry.withdraw_item(session, gone.id, reason="wrongly classified")  # in the same page
    other = _pdq()
    registry.add_item(session, "police", [("pdq", other)], category="non_pertinent")
    kept = [_pdq() for _ in range(5)]
    _fill(session, "police", kept)
    exchange.add_partner(session, "a", url="http://127.0.0.1:9", public_key=key.public,
                         send_sets=["police"], receive=[("police", "from-a")],
                         receive_categories=["csam_baseline"])  # fmt: skip
    session.commit()
    page = _pull(session, key, "a")
    assert len(set(page.columns.entry)) < len(page)  # an entry twice: folded first
    assert _active(session, "from-a") == {*two, *kept}
    (mine,) = [i for i in registry.find_items(session, "md5", two[1]) if i.id != item.id]
    assert set(mine.signals) == {("pdq", two[0]), ("md5", two[1])}  # one entry, two signals
    assert session.scalar(select(func.count()).select_from(EntrySource)) == 6
    assert verify_all(session).ok


def test_pages_that_wait_are_applied_as_one(session: Session, key: InstanceKey) -> None:
    registry.create_set(session, "police", default_category="csam_baseline")
    values = [_pdq() for _ in range(30)]
    _fill(session, "police", values)
    _link(session, key, "a", "police", "from-a")
    follow, partner = _follow(session, "a")
    info = exchange.get_partner(session, "a")
    pages, after = [], 0
    while not pages or pages[-1].more:  # 31 changes (the set's own first): four pages
        body = build_page(session, key, info, "police", after=after, limit=10)
        pages.append(parse_page(body, partner="a", public_key=key.public, set_name="police",
                                after=after))  # fmt: skip
        after = pages[-1].last
    page = merged(pages)
    assert (page.after, page.last, len(page)) == (0, pages[-1].last, 30)
    assert [reason for _, reason in page.set_changes] == ["set_created"]
    apply_page(session, follow, partner, page)
    session.commit()
    assert _active(session, "from-a") == set(values)
    assert _follow(session, "a")[0].after_seq == pages[-1].last
    assert verify_all(session).ok


def test_a_large_page_cache_only_while_writing(session: Session) -> None:
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        with large_cache(connection, 64):  # the server's cache: nothing to do
            return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    with large_cache(connection, 64):
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024
    assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before

"""Sets and items through the Python API, with the change rows and audit events of each write."""

from __future__ import annotations

import io
import json
import secrets

import pytest
from sqlalchemy import select

from meldpunt import audit, registry
from meldpunt.registry import Change
from meldpunt.store.models import AuditEvent


def md5() -> str:
    return secrets.token_hex(16)


def pdq() -> str:
    return secrets.token_hex(32)


def rows(changes: list[Change]) -> list[tuple]:
    """Changes without their numbers and times: what a follower applies."""
    return [(c.action, c.item_id, c.signal_type, c.value, c.category, c.reason) for c in changes]


def audit_actions(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_create_and_look_up_sets(session):
    police = registry.create_set(
        session,
        "police-nl",
        description="national database",
        source_org="Politie",
        default_category="baseline",
        pdq_threshold=20,
        actor="analyst:1",
    )
    stock = registry.create_set(session, "stock", kind="allowlist")
    session.commit()
    assert police.default_category == "csam_baseline"  # normalised from any scheme
    assert (police.kind, police.state, police.pdq_threshold) == ("blocklist", "active", 20)
    assert stock.is_allowlist and stock.pdq_threshold == 31 and stock.default_category is None
    assert registry.get_set(session, "police-nl") == registry.get_set(session, police.id)
    assert [s.name for s in registry.list_sets(session)] == ["police-nl", "stock"]
    assert police.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "greylist"}, "kind"),
        ({"pdq_threshold": 65}, "pdq_threshold"),
        ({"default_category": "Z"}, "unknown category"),
    ],
)
def test_bad_set_values_are_refused(session, kwargs, message):
    with pytest.raises(registry.InvalidInput, match=message):
        registry.create_set(session, "x", **kwargs)


def test_set_names_are_unique_and_lookups_fail_clearly(session):
    registry.create_set(session, "police")
    with pytest.raises(registry.InvalidInput, match="exists already"):
        registry.create_set(session, "police")
    with pytest.raises(registry.NotFound):
        registry.get_set(session, "nope")
    with pytest.raises(registry.NotFound):
        registry.get_item(session, 12345)


def test_one_picture_several_signals_one_item(session):
    police = registry.create_set(session, "police", default_category="csam_baseline")
    digest, perceptual = md5(), pdq()
    result = registry.add_item(
        session, police, [("MD5", digest.upper()), ("pdq", perceptual)], reference="4711"
    )
    assert result.outcome == "added"
    item = result.item
    assert item.signals == (("md5", digest), ("pdq", perceptual))  # normalised, order kept
    assert (item.reference, item.status, item.category) == ("4711", "active", "csam_baseline")
    assert (item.category_raw, item.category_scheme) == (None, None)  # from the set's default
    assert [i.id for i in registry.find_items(session, "md5", digest)] == [item.id]


def test_add_item_is_idempotent_and_links_new_signals(session):
    police = registry.create_set(session, "police")
    digest = md5()
    first = registry.add_item(session, police, [("md5", digest)], category="A1").item
    again = registry.add_item(session, police, [("md5", digest)], category="A1")
    assert again.outcome == "unchanged" and again.item == first
    # the same picture with one more signal: the same item, the new signal linked to it
    perceptual = pdq()
    more = registry.add_item(session, police, [("md5", digest), ("pdq", perceptual)])
    assert more.outcome == "updated" and more.item.id == first.id
    assert more.item.signals == (("md5", digest), ("pdq", perceptual))
    assert more.item.category == "csam_baseline"  # left out: the item keeps its category
    # signals of two different items cannot become one item
    other = registry.add_item(session, police, [("md5", md5())]).item
    with pytest.raises(registry.ConflictingItems, match=str(other.id)):
        registry.add_item(session, police, [("md5", digest), ("md5", other.signals[0][1])])


def test_bad_signals_are_refused(session):
    police = registry.create_set(session, "police")
    for signals, message in [
        ([("md5", "abc")], "32 hex digits"),
        ([("md5", "z" * 32)], "hexadecimal"),
        ([("tlsh", "T1" + "0" * 70)], "unknown signal type"),
        ([], "at least one signal"),
        ([("photodna", "not base64!")], "base64 or hexadecimal"),
    ]:
        with pytest.raises(registry.InvalidInput, match=message):
            registry.add_item(session, police, signals)


def test_text_longer_than_its_column_is_refused_per_item(session):
    """PostgreSQL refuses text longer than a column, failing the whole transaction; the
    registry names the item instead, alike on both databases, and the batch goes on."""
    police = registry.create_set(session, "police")
    for kwargs, message in [
        ({"category": "x" * 201}, "category is longer than 200"),
        ({"reference": "r" * 201}, "reference is longer than 200"),
    ]:
        with pytest.raises(registry.InvalidInput, match=message):
            registry.add_item(session, police, [("md5", md5())], **kwargs)
    session.commit()
    lines = [json.dumps({"signals": [["md5", md5()]], "category": "x" * 300}),
             json.dumps({"signals": [["md5", md5()]], "reference": "fine"})]  # fmt: skip
    data = io.BytesIO("\n".join(lines).encode())
    summary = registry.import_stream(session, police, data, format="jsonl")
    assert (summary.added, summary.rejected) == (1, 1), summary
    assert "longer than 200" in summary.problems[0].reason


def test_photodna_is_stored_as_given_but_not_matchable(session):
    from meldpunt.signals import types

    assert types.get("photodna").matchable is False
    police = registry.create_set(session, "police")
    value = "QUJD" * 48  # 192 base64 characters, the usual size
    item = registry.add_item(session, police, [("PhotoDNA", f" {value} ")]).item
    assert item.signals == (("photodna", value),)


def test_change_log_for_every_kind_of_write(session):
    police = registry.create_set(session, "police", default_category="csam_baseline")
    start = registry.current_seq(session)
    digest, perceptual = md5(), pdq()
    item = registry.add_item(session, police, [("md5", digest), ("pdq", perceptual)]).item
    i = item.id
    registry.add_item(session, police, [("md5", digest)], category="B", category_scheme="uk")
    registry.disable_item(session, i)
    registry.enable_item(session, i)
    registry.withdraw_item(session, i, reason="wrongly classified")
    registry.disable_item(session, i)  # withdrawn -> disabled: inactive either way, still logged
    registry.delete_item(session, i)
    registry.disable_set(session, police)
    registry.enable_set(session, police)
    session.commit()

    changes = registry.changes_since(session, start)
    assert rows(changes) == [
        ("add", i, "md5", digest, "csam_baseline", "added"),
        ("add", i, "pdq", perceptual, "csam_baseline", "added"),
        ("update", i, "md5", digest, "csam", "category"),
        ("update", i, "pdq", perceptual, "csam", "category"),
        ("remove", i, "md5", digest, "csam", "disabled"),
        ("remove", i, "pdq", perceptual, "csam", "disabled"),
        ("add", i, "md5", digest, "csam", "enabled"),
        ("add", i, "pdq", perceptual, "csam", "enabled"),
        ("remove", i, "md5", digest, "csam", "withdrawn"),
        ("remove", i, "pdq", perceptual, "csam", "withdrawn"),
        ("remove", i, "md5", digest, "csam", "disabled"),  # followers ignore these
        ("remove", i, "pdq", perceptual, "csam", "disabled"),
        ("remove", i, "md5", digest, "csam", "deleted"),  # deletions are in the log too
        ("remove", i, "pdq", perceptual, "csam", "deleted"),
        ("update", None, None, None, None, "set_disabled"),
        ("update", None, None, None, None, "set_enabled"),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert registry.current_seq(session) == seqs[-1]
    assert all(c.set_id == police.id and c.at.tzinfo is not None for c in changes)
    assert changes[-1].is_set_change and not changes[0].is_set_change
    # paging: limit, then the rest
    assert registry.changes_since(session, start, limit=3) == changes[:3]
    assert registry.changes_since(session, changes[2].seq) == changes[3:]
    assert registry.changes_since(session, seqs[-1]) == []


def test_set_creation_is_a_set_change(session):
    before = registry.current_seq(session)
    police = registry.create_set(session, "police")
    (change,) = registry.changes_since(session, before)
    assert (change.action, change.set_id, change.reason) == ("add", police.id, "set_created")
    assert change.is_set_change


def test_every_write_is_audited_in_its_transaction(session):
    police = registry.create_set(session, "police", actor="analyst:1")
    item = registry.add_item(session, police, [("md5", md5())], actor="analyst:1").item
    registry.add_item(session, police, [("md5", item.signals[0][1])], category="A2")
    registry.add_item(session, police, [("md5", item.signals[0][1])], category="A2")  # no-op
    registry.disable_item(session, item.id)
    registry.withdraw_item(session, item.id, reason="taken back by the source")
    registry.delete_item(session, item.id)
    registry.disable_set(session, police)
    registry.disable_set(session, police)  # already disabled: nothing happens
    session.commit()
    assert audit_actions(session) == [
        "registry.set.created",
        "registry.item.added",
        "registry.item.updated",
        "registry.item.disabled",
        "registry.item.withdrawn",
        "registry.item.deleted",
        "registry.set.disabled",
    ]
    assert audit.verify(session).ok


def test_a_rolled_back_write_leaves_no_change_and_no_audit_event(session):
    police = registry.create_set(session, "police")
    session.commit()
    seq, events = registry.current_seq(session), audit_actions(session)
    registry.add_item(session, police, [("md5", md5())])
    session.rollback()
    assert registry.current_seq(session) == seq
    assert audit_actions(session) == events


def test_active_signals_are_those_of_active_items_in_any_set(session):
    police = registry.create_set(session, "police", default_category="A1")
    other = registry.create_set(session, "other")
    keep = registry.add_item(session, police, [("md5", md5()), ("pdq", pdq())]).item
    gone = registry.add_item(session, police, [("md5", md5())]).item
    paused = registry.add_item(session, other, [("pdq", pdq())]).item
    registry.withdraw_item(session, gone.id, reason="taken back by the source")
    registry.disable_set(session, other)  # set state is the consumer's to filter
    session.commit()
    active = list(registry.active_signals(session))
    assert {(s.set_id, s.item_id, s.signal_type, s.value, s.category) for s in active} == {
        (police.id, keep.id, *keep.signals[0], "csam_baseline"),
        (police.id, keep.id, *keep.signals[1], "csam_baseline"),
        (other.id, paused.id, *paused.signals[0], "uncategorised"),
    }
    assert {s.item_id for s in registry.active_signals(session, "md5")} == {keep.id}


def test_set_summaries_count_by_status_category_and_type(session):
    police = registry.create_set(session, "police")
    registry.add_item(session, police, [("md5", md5()), ("pdq", pdq())], category="A1")
    registry.add_item(session, police, [("md5", md5())], category="national")
    gone = registry.add_item(session, police, [("sha1", secrets.token_hex(20))]).item
    registry.withdraw_item(session, gone.id, reason="taken back by the source")
    registry.create_set(session, "empty")
    session.commit()
    empty, summary = registry.set_summaries(session)
    assert empty.set.name == "empty" and empty.items == 0
    assert summary.items_by_status == {"active": 2, "withdrawn": 1}
    assert summary.active_by_category == {"csam_baseline": 1, "csam_national": 1}
    assert summary.active_signals_by_type == {"md5": 2, "pdq": 1}
    assert (summary.items, summary.active_items) == (3, 2)


def test_a_long_lived_session_sees_other_sessions_changes(engine, session):
    from sqlalchemy.orm import Session

    police = registry.create_set(session, "police")
    session.commit()
    assert registry.get_set(session, police.id).state == "active"
    with Session(engine) as other:
        registry.disable_set(other, police.id)
        other.commit()
    session.rollback()  # end the read transaction, as a polling follower does
    assert registry.get_set(session, police.id).state == "disabled"

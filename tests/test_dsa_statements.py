"""Statements of reasons for the DSA Transparency Database (``monitor/dsa.py``): every outcome and
category, the schema's checks naming the field, batches of at most 100 in a stable order, the
date range, one platform never seeing another's, hostile ranges (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from meldpunt import checks, registry
from meldpunt.checks.vocabulary import OUTCOMES
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.monitor import dsa
from meldpunt.registry.categories import CODES
from meldpunt.store.models import Hit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def md5() -> str:
    return os.urandom(16).hex()


def bare_hit(outcome: str | None, category: str, **extra) -> Hit:
    values = dict(
        id=1, public_id=4242, org_id=1, at=T0, signal_type="pdq", signal_value="0" * 64,
        distance=12, set_id=1, item_id=1, category=category, platform_ref="upload-77",
        outcome=outcome, outcome_at=None if outcome is None else T0 + timedelta(hours=2),
    )  # fmt: skip
    values.update(extra)
    return Hit(**values)


@pytest.mark.parametrize("outcome", [*OUTCOMES, None])
@pytest.mark.parametrize("category", sorted(CODES))
def test_every_outcome_and_category_makes_a_valid_statement_or_a_reason(outcome, category):
    hit = bare_hit(outcome, category)
    if outcome in ("removed", "blocked") and category in ("csam_baseline", "csam_national",
                                                          "csam", "ncii"):  # fmt: skip
        statement = dsa.statement_for(hit)
        dsa.validate_statement(statement)
        assert statement["decision_visibility"] == [
            "DECISION_VISIBILITY_CONTENT_REMOVED"
            if outcome == "removed"
            else "DECISION_VISIBILITY_CONTENT_DISABLED"
        ]
        if category == "ncii":
            assert statement["category"] == "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR"
            assert statement["category_specification"] == ["KEYWORD_NON_CONSENSUAL_IMAGE_SHARING"]
        else:
            assert statement["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
            assert statement["category_specification"] == ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"]
        assert statement["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
        assert (
            statement["illegal_content_legal_ground"] and statement["illegal_content_explanation"]
        )
        assert statement["automated_detection"] == "Yes"
        assert statement["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
        assert statement["content_type"] == ["CONTENT_TYPE_IMAGE"]
        assert statement["content_date"] == "2026-03-01"
        assert statement["application_date"] == "2026-03-01"
        assert statement["puid"] == "upload-77"
        assert set(statement) <= set(dsa.FIELDS)
    else:
        with pytest.raises(dsa.InvalidInput, match="makes no"):
            dsa.statement_for(hit)


def valid() -> dict:
    return dsa.statement_for(bare_hit("removed", "csam_baseline"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"decision_ground": None}, "decision_ground"),
        ({"decision_ground": "ILLEGAL"}, "decision_ground"),
        ({"category": "STATEMENT_CATEGORY_CHILD_SAFETY"}, "category"),  # the 2023 draft's word
        ({"category_specification": ["KEYWORD_CSAM"]}, "category_specification"),
        ({"decision_visibility": ["DECISION_VISIBILITY_HIDDEN"]}, "decision_visibility"),
        ({"decision_visibility": None}, "decision_visibility"),
        ({"decision_visibility": ["DECISION_VISIBILITY_OTHER"]}, "decision_visibility_other"),
        ({"content_type": []}, "content_type"),
        ({"content_type": "CONTENT_TYPE_IMAGE"}, "content_type"),
        ({"content_type": ["CONTENT_TYPE_OTHER"]}, "content_type_other"),
        ({"category_specification": ["KEYWORD_OTHER"]}, "category_specification_other"),
        ({"illegal_content_legal_ground": None}, "illegal_content_legal_ground"),
        ({"illegal_content_explanation": "x" * 2001}, "illegal_content_explanation"),
        ({"incompatible_content_ground": "clause 4"}, "incompatible_content_ground"),
        ({"incompatible_content_illegal": "Yes"}, "incompatible_content_illegal"),
        ({"automated_detection": True}, "automated_detection"),
        ({"automated_decision": "Yes"}, "automated_decision"),
        ({"source_type": "SOURCE_HOTLINE"}, "source_type"),
        ({"territorial_scope": ["US"]}, "territorial_scope"),
        ({"territorial_scope": ["NL", "NL"]}, "territorial_scope"),
        ({"content_date": "1999-12-31"}, "content_date"),
        ({"content_date": "01-03-2026"}, "content_date"),
        ({"application_date": "2019-12-31"}, "application_date"),
        ({"application_date": "2026-02-30"}, "application_date"),
        ({"end_date_visibility_restriction": "2038-01-02"}, "end_date_visibility_restriction"),
        ({"decision_facts": ""}, "decision_facts"),
        ({"decision_facts": "x" * 5001}, "decision_facts"),
        ({"decision_facts": "a\x00b"}, "decision_facts"),
        ({"puid": "upload 77"}, "puid"),
        ({"puid": "x" * 501}, "puid"),
        ({"decision_ground_reference_url": "javascript:alert(1)"}, "decision_ground_reference_url"),
        ({"platform_name": "x"}, "platform_name"),
    ],
)
def test_an_invalid_statement_is_refused_naming_the_field(change, field):
    statement = valid()
    statement.update(change)
    with pytest.raises(dsa.InvalidStatement) as caught:
        dsa.validate_statement(statement)
    assert caught.value.field == field
    assert repr(field) in str(caught.value)


def test_the_other_ground_and_decisions_validate_when_complete():
    statement = valid()
    for name in ("illegal_content_legal_ground", "illegal_content_explanation"):
        del statement[name]
    statement.update(
        decision_ground="DECISION_GROUND_INCOMPATIBLE_CONTENT",
        incompatible_content_ground="terms, clause 4",
        incompatible_content_explanation="the picture breaks clause 4",
        incompatible_content_illegal="Yes",
        decision_visibility=None,
        decision_account="DECISION_ACCOUNT_TERMINATED",
        decision_ground_reference_url="https://example.org/terms",
    )
    dsa.validate_statement(statement)


def test_options_are_checked_and_a_video_signal_is_video():
    with pytest.raises(dsa.InvalidInput, match="automated_decision"):
        dsa.StatementOptions(automated_decision="Yes")
    with pytest.raises(dsa.InvalidInput, match="source_type"):
        dsa.StatementOptions(source_type="SOURCE_HOTLINE")
    with pytest.raises(dsa.InvalidInput, match="territorial_scope"):
        dsa.StatementOptions(territorial_scope=("US",))
    options = dsa.StatementOptions(
        automated_decision="AUTOMATED_DECISION_FULLY", territorial_scope=("NL",)
    )
    statement = dsa.statement_for(bare_hit("blocked", "ncii", signal_type="video_md5"), options)
    assert statement["content_type"] == ["CONTENT_TYPE_VIDEO"]
    assert statement["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert statement["territorial_scope"] == ["NL"]


def test_a_reference_the_database_would_refuse_becomes_the_hit_id():
    assert dsa.statement_for(bare_hit("removed", "csam", platform_ref="a/b c"))["puid"] == (
        "hit-4242"
    )
    assert dsa.statement_for(bare_hit("removed", "csam", platform_ref=None))["puid"] == "hit-4242"


# --- from the database --------------------------------------------------------------------------


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


@pytest.fixture
def world(session, settings, clock):
    a = checks.create_org(session, "platform-a", "platform")
    b = checks.create_org(session, "platform-b", "platform")
    block = registry.create_set(session, "police", default_category="baseline")
    item = registry.add_item(session, block, [("md5", md5())]).item.id
    session.commit()
    return a, b, block, item


def hits(session, org, block, item, count, *, category="csam_baseline", refs=None):
    given = [
        checks.NewHit(
            "md5",
            md5(),
            0,
            block.id,
            item,
            category,
            platform_ref=None if refs is None else refs[i],
        )  # fmt: skip
        for i in range(count)
    ]
    ids = checks.record_hits(session, org.id, given)
    session.commit()
    return ids


def act(session, clock, org, ids, outcome="removed", every=3):
    """Outcomes for the hits, the clock a minute on after every ``every`` of them (ties)."""
    for n, public_id in enumerate(ids):
        if n % every == 0:
            clock.advance(timedelta(minutes=1))
        reason = "moderator" if outcome == "other" else None
        report = "r-1" if outcome == "reported" else None
        checks.record_outcome(session, org.id, public_id, outcome, reason=reason,
                              report_id=report, actor="test")  # fmt: skip
    session.commit()


def test_250_hits_make_3_batches_in_a_stable_order_none_twice_none_lost(session, world, clock):
    a, b, block, item = world
    ids = hits(session, a, block, item, 250, refs=[f"up-{i}" for i in range(250)])
    act(session, clock, a, ids)
    other = hits(session, b, block, item, 20)
    act(session, clock, b, other)
    # outcomes that make no statement
    skipped = hits(session, a, block, item, 5)
    act(session, clock, a, skipped[:3], "reported")
    act(session, clock, a, skipped[3:], "false_positive")
    comparison = hits(session, a, block, item, 2, category="comparison")
    act(session, clock, a, comparison)

    found = list(dsa.batches(session, "platform-a", "2026-03-01", "2026-03-02"))
    assert [len(batch.statements) for batch in found] == [100, 100, 50]
    assert [batch.number for batch in found] == [1, 2, 3]
    assert [batch.has_next for batch in found] == [True, True, False]
    puids = [s["puid"] for batch in found for s in batch.statements]
    assert puids == [f"up-{i}" for i in range(250)]  # in the order acted on, ties by hit
    for batch in found:
        assert set(batch.body()) == {"statements"}
        assert len(batch.body()["statements"]) <= dsa.BATCH_LIMIT
        for statement in batch.statements:
            dsa.validate_statement(statement)
    # the same again, and page by page
    again = [s for batch in dsa.batches(session, a.id, "2026-03-01", "2026-03-02")
             for s in batch.statements]  # fmt: skip
    assert again == [s for batch in found for s in batch.statements]
    for number, batch in enumerate(found, start=1):
        page = dsa.statement_page(session, "platform-a", "2026-03-01", "2026-03-02", number)
        assert page == batch
    empty = dsa.statement_page(session, "platform-a", "2026-03-01", "2026-03-02", 4)
    assert empty.statements == [] and not empty.has_next

    counts = dsa.statement_counts(session, "platform-a", "2026-03-01", "2026-03-02")
    assert counts.plain() == {
        "statements": 250,
        "batches": 3,
        "skipped": {"category comparison": 2, "outcome false_positive": 2, "outcome reported": 3},
    }
    # the other platform's hits never appear in platform-a's statements, nor the reverse
    theirs = [s for batch in dsa.batches(session, "platform-b", "2026-03-01", "2026-03-02")
              for s in batch.statements]  # fmt: skip
    assert len(theirs) == 20
    assert {s["puid"] for s in theirs} == {f"hit-{i}" for i in other}
    assert not {s["puid"] for s in theirs} & set(puids)


def test_the_range_includes_since_and_excludes_until(session, world, clock):
    a, _, block, item = world
    ids = hits(session, a, block, item, 4)
    moments = [
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC) - timedelta(microseconds=1),  # before since
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC),  # at since: in
        datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC),  # in
        datetime(2026, 3, 2, 0, 0, tzinfo=UTC),  # at until: out
    ]
    for public_id, moment in zip(ids, moments, strict=True):
        with use_clock(FrozenClock(moment)):
            checks.record_outcome(session, a.id, public_id, "blocked", actor="test")
    session.commit()
    found = dsa.statement_page(session, a.id, "2026-03-01", "2026-03-02")
    assert [s["puid"] for s in found.statements] == [f"hit-{ids[1]}", f"hit-{ids[2]}"]
    assert {s["application_date"] for s in found.statements} == {"2026-03-01"}
    wider = dsa.statement_page(session, a.id, "2026-02-28", "2026-03-03T00:00:00+01:00")
    assert len(wider.statements) == 4


def test_a_reference_used_twice_is_the_puid_of_the_first_statement_only(session, world, clock):
    a, _, block, item = world
    ids = hits(session, a, block, item, 3, refs=["same", "same", "other one"])
    act(session, clock, a, ids, every=1)
    statements = dsa.statement_page(session, a.id, "2026-03-01", "2026-03-02").statements
    assert [s["puid"] for s in statements] == ["same", f"hit-{ids[1]}", f"hit-{ids[2]}"]
    # the second page's view of the same reference agrees with the first (no per-page state)
    assert len({s["puid"] for s in statements}) == 3


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("yesterday", "2026-03-02", "not a date"),
        ("2026-03-01", "", "give a date"),
        ("2026-03-02", "2026-03-01", "must lie after"),
        ("2026-03-01", "2026-03-01", "must lie after"),
        ("2020-01-01", "2026-01-01", "at most 366 days"),
        ("0001-01-01", "2026-01-01", "outside"),
        ("2026-03-01", "9999-12-31", "outside"),
        ("2026-03-01", "2" * 41, "give a date"),
        ("2026-03-01\x00", "2026-03-02", "not a date"),
    ],
)
def test_hostile_ranges_are_refused_clearly(session, world, since, until, message):
    with pytest.raises(dsa.InvalidInput, match=message):
        dsa.statement_page(session, "platform-a", since, until)
    with pytest.raises(dsa.InvalidInput, match=message):
        list(dsa.batches(session, "platform-a", since, until))


def test_a_bad_page_or_an_unknown_platform_is_refused(session, world):
    with pytest.raises(dsa.InvalidInput, match="page"):
        dsa.statement_page(session, "platform-a", "2026-03-01", "2026-03-02", 0)
    with pytest.raises(checks.NotFound):
        dsa.statement_page(session, "nobody", "2026-03-01", "2026-03-02")

"""Subscriptions: set names and category filters are resolved and stored as ids and codes;
unknown ones are refused; no subscription means every blocklist and the illegal categories
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from meldpunt import audit, checks, registry
from meldpunt.store.models import AuditEvent
from meldpunt.store.models import Subscription as SubscriptionRow


@pytest.fixture
def world(session):
    org = checks.create_org(session, "p", "platform")
    police = registry.create_set(session, "police-nl", default_category="baseline")
    ncii = registry.create_set(session, "ncii-list", default_category="ncii")
    stock = registry.create_set(session, "stock", kind="allowlist")
    session.commit()
    return org, police, ncii, stock


def test_without_a_subscription_every_blocklist_counts_for_illegal_categories_only(session, world):
    org, police, *_ = world
    sub = checks.get_subscription(session, org.id)
    assert sub == checks.Subscription(org_id=org.id, set_ids=None)
    assert sub.categories == registry.FILTERS["illegal"]
    assert sub.admits(123, "csam_baseline") and sub.admits(police.id, "ncii")
    for assessed_otherwise in ("non_pertinent", "unknown", "uncategorised", "comparison"):
        assert not sub.admits(police.id, assessed_otherwise)
    # a subscription to some sets only keeps the default categories
    chosen = checks.set_subscription(session, "p", sets=["police-nl"], categories=None, actor="a")
    assert chosen.categories == registry.FILTERS["illegal"]
    # an admin can name other categories on purpose
    wider = checks.set_subscription(
        session, "p", sets=None, categories="illegal,uncategorised", actor="a"
    )
    assert wider.admits(police.id, "uncategorised")


def test_set_names_and_category_filters_are_resolved(session, world):
    org, police, ncii, _ = world
    sub = checks.set_subscription(
        session, "p", sets=["police-nl", " ncii-list "], categories="baseline,ncii", actor="admin"
    )
    session.commit()
    assert sub.set_ids == frozenset({police.id, ncii.id})
    assert sub.categories == frozenset({"csam_baseline", "ncii"})
    assert checks.get_subscription(session, org.id) == sub
    assert sub.admits(police.id, "csam_baseline")
    assert not sub.admits(police.id, "csam_national")
    assert not sub.admits(police.id + 1000, "ncii")

    # stored as ids and codes, not names, so renamed filters do not change old subscriptions
    row = session.scalar(select(SubscriptionRow))
    assert row is not None
    assert json.loads(row.set_ids or "") == sorted([police.id, ncii.id])
    assert json.loads(row.categories or "") == ["csam_baseline", "ncii"]

    # a named filter expands to its codes; a list works as well as a comma-separated string
    csam = checks.set_subscription(session, org.id, sets=None, categories=["csam"], actor="a")
    assert csam.set_ids is None
    assert csam.categories == frozenset({"csam_baseline", "csam_national", "csam"})


def test_setting_none_restores_the_default_and_each_change_is_audited(session, world):
    org, police, *_ = world
    checks.set_subscription(session, "p", sets=["police-nl"], categories=None, actor="admin")
    checks.set_subscription(session, "p", sets=None, categories=None, actor="admin")
    session.commit()
    assert checks.get_subscription(session, org.id) == checks.Subscription(org.id)
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "checks.subscription.set")
    ).all()
    assert len(events) == 2
    second = json.loads(events[1].details)
    assert second["set_ids"] is None and second["before"]["set_ids"] == [police.id]
    assert audit.verify(session).ok


@pytest.mark.parametrize(
    ("sets", "categories", "message"),
    [
        (["nope"], None, "no hash set 'nope'"),
        (["stock"], None, "allow-list"),
        ([], None, "at least one set"),
        (None, "bogus", "unknown category filter 'bogus'"),
        (None, "", "at least one"),
        (None, [], "at least one"),
    ],
)
def test_unknown_sets_and_categories_are_refused(session, world, sets, categories, message):
    org, *_ = world
    with pytest.raises(checks.InvalidInput, match=message):
        checks.set_subscription(session, "p", sets=sets, categories=categories, actor="admin")
    session.rollback()
    assert checks.get_subscription(session, org.id) == checks.Subscription(org.id)


def test_an_unknown_organisation_is_not_found(session, world):
    with pytest.raises(checks.NotFound):
        checks.set_subscription(session, "nobody", sets=None, categories=None, actor="admin")

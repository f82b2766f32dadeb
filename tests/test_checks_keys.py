"""Organisations and API keys: a key is shown once, stored hashed, and stops working when it is
revoked or expires or its organisation is disabled (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from meldpunt import audit, checks
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.store.models import ApiKey, AuditEvent

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with use_clock(FrozenClock(T0)) as frozen:
        yield frozen


def test_organisations_are_created_listed_and_found_by_id_or_name(session):
    org = checks.create_org(session, "example-platform", "platform", contact_email="a@b.example")
    checks.create_org(session, "hotline-nl", "hotline")
    assert org.kind == "platform" and org.contact_email == "a@b.example" and not org.disabled
    assert checks.get_org(session, org.id) == org
    assert checks.get_org(session, "example-platform") == org
    assert checks.get_org(session, str(org.id)) == org  # digits that are nobody's name: an id
    assert [o.name for o in checks.list_orgs(session)] == ["example-platform", "hotline-nl"]

    with pytest.raises(checks.NotFound):
        checks.get_org(session, "nobody")
    with pytest.raises(checks.NotFound):
        checks.get_org(session, 999)


@pytest.mark.parametrize("ref", ["\u00b2", "\u0663", "9" * 30])
def test_numbers_that_are_no_row_id_find_nothing(session, ref):
    # a superscript two is a digit to Python but no number; 30 nines fit no database column
    org = checks.create_org(session, "example-platform", "platform")
    checks.create_key(session, org.id, "platform")
    with pytest.raises(checks.NotFound):
        checks.get_org(session, ref)
    with pytest.raises(checks.NotFound):
        checks.revoke_key(session, ref, actor="admin")


@pytest.mark.parametrize(
    ("name", "kind", "email", "message"),
    [
        ("x", "bank", None, "kind must be one of"),
        ("", "platform", None, "name cannot be empty"),
        ("42", "platform", None, "would read as an id"),
        ("x", "platform", "not-an-address", "not an e-mail address"),
    ],
)
def test_organisations_refuse_bad_input(session, name, kind, email, message):
    with pytest.raises(checks.InvalidInput, match=message):
        checks.create_org(session, name, kind, contact_email=email)


def test_an_organisation_name_is_unique(session):
    checks.create_org(session, "dup", "partner")
    with pytest.raises(checks.InvalidInput, match="exists already"):
        checks.create_org(session, "dup", "platform")


def test_a_created_key_authenticates_and_only_its_hash_is_stored(session):
    org = checks.create_org(session, "p", "platform")
    info, key = checks.create_key(session, "p", "platform", label="uploads", actor="admin:1")
    session.commit()

    assert re.fullmatch(r"mp_[A-Za-z0-9_-]{40}", key)
    assert info.prefix == key[:12] and info.org_name == "p" and info.active
    principal = checks.authenticate(session, key)
    assert principal == checks.Principal(
        key_id=info.id, org_id=org.id, org_name="p", org_kind="platform", role="platform"
    )

    row = session.scalar(select(ApiKey).where(ApiKey.id == info.id))
    assert row is not None
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() != key
    stored = [getattr(row, c.key) for c in ApiKey.__table__.columns]
    assert not any(isinstance(v, str) and key in v for v in stored)
    # ... and neither the key nor its hash is in the audit log
    events = session.scalars(select(AuditEvent)).all()
    assert not any(key in e.details or row.key_hash in e.details for e in events)
    created = [e for e in events if e.action == "checks.key.created"]
    assert len(created) == 1 and created[0].actor == "admin:1"
    assert audit.verify(session).ok


def test_unknown_and_malformed_keys_do_not_authenticate(session):
    checks.create_org(session, "p", "platform")
    _, key = checks.create_key(session, "p", "platform")
    other = checks.keys.generate_key()
    for wrong in (other, key[:-1], key + "x", "", "mp_", key.upper(), "Bearer " + key):
        assert checks.authenticate(session, wrong) is None


def test_keys_are_made_for_known_roles_and_enabled_organisations(session):
    checks.create_org(session, "p", "platform")
    with pytest.raises(checks.InvalidInput, match="role must be one of"):
        checks.create_key(session, "p", "root")
    with pytest.raises(checks.NotFound):
        checks.create_key(session, "nobody", "platform")
    with pytest.raises(checks.InvalidInput, match="not in the future"):
        checks.create_key(session, "p", "platform", expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    checks.disable_org(session, "p", actor="admin")
    with pytest.raises(checks.InvalidInput, match="disabled"):
        checks.create_key(session, "p", "platform")


def test_a_revoked_key_stops_working_by_id_prefix_or_the_key_itself(session):
    checks.create_org(session, "p", "platform")
    first, key1 = checks.create_key(session, "p", "platform")
    second, key2 = checks.create_key(session, "p", "analyst")
    third, key3 = checks.create_key(session, "p", "admin")
    session.commit()

    revoked = checks.revoke_key(session, first.id, actor="admin")
    assert revoked.revoked_at is not None and not revoked.active
    checks.revoke_key(session, second.prefix, actor="admin")
    checks.revoke_key(session, key3, actor="admin")
    session.commit()
    assert [checks.authenticate(session, k) for k in (key1, key2, key3)] == [None] * 3

    # revoking again changes nothing and is not audited again
    again = checks.revoke_key(session, str(first.id), actor="admin")
    assert again.revoked_at == revoked.revoked_at
    actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("checks.key.revoked") == 3

    with pytest.raises(checks.NotFound):
        checks.revoke_key(session, "mp_nosuchkey", actor="admin")
    with pytest.raises(checks.NotFound):
        checks.revoke_key(session, 12345, actor="admin")


def test_an_expired_key_stops_working(session, clock):
    checks.create_org(session, "p", "platform")
    info, key = checks.create_key(session, "p", "platform", expires_at=T0 + timedelta(hours=1))
    session.commit()
    assert checks.authenticate(session, key) is not None
    clock.advance(timedelta(minutes=59, seconds=59))
    assert checks.authenticate(session, key) is not None
    clock.advance(timedelta(seconds=1))
    assert checks.authenticate(session, key) is None
    assert not checks.list_keys(session, "p")[0].active


def test_keys_of_a_disabled_organisation_stop_working_until_it_is_enabled(session):
    checks.create_org(session, "p", "platform")
    _, key = checks.create_key(session, "p", "platform")
    session.commit()
    assert checks.disable_org(session, "p", actor="admin").disabled
    session.commit()
    assert checks.authenticate(session, key) is None
    assert not checks.list_keys(session)[0].active
    checks.enable_org(session, "p", actor="admin")
    session.commit()
    assert checks.authenticate(session, key) is not None


def test_last_used_at_is_written_at_most_once_a_minute(session, clock):
    checks.create_org(session, "p", "platform")
    info, key = checks.create_key(session, "p", "platform")
    session.commit()
    assert info.last_used_at is None

    def last_used():
        session.commit()
        return checks.list_keys(session)[0].last_used_at

    assert checks.authenticate(session, key) is not None
    assert last_used() == T0
    clock.advance(timedelta(seconds=59))
    assert checks.authenticate(session, key) is not None
    assert last_used() == T0  # not written again within the minute
    clock.advance(timedelta(seconds=1))
    assert checks.authenticate(session, key) is not None
    assert last_used() == T0 + timedelta(minutes=1)


def test_list_keys_shows_prefixes_per_organisation(session):
    checks.create_org(session, "b-org", "platform")
    checks.create_org(session, "a-org", "hotline")
    checks.create_key(session, "b-org", "platform", label="one")
    checks.create_key(session, "a-org", "analyst")
    checks.create_key(session, "b-org", "admin")
    keys = checks.list_keys(session)
    assert [(k.org_name, k.role) for k in keys] == [
        ("a-org", "analyst"),
        ("b-org", "platform"),
        ("b-org", "admin"),
    ]
    assert [k.label for k in checks.list_keys(session, "b-org")] == ["one", None]
    assert all(len(k.prefix) == 12 and k.prefix.startswith("mp_") for k in keys)
    with pytest.raises(checks.NotFound):
        checks.list_keys(session, "nobody")

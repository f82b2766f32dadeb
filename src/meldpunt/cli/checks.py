"""``meldpunt orgs|keys|subscriptions ...``: bootstrapping the check service from the command line
(thin: the pages manage the same things later).

    meldpunt orgs create example-platform --kind platform --email abuse@example.org
    meldpunt orgs distances example-platform --show
    meldpunt keys create example-platform --role platform --label "upload pipeline"
    meldpunt keys list example-platform
    meldpunt keys revoke mp_AbCdEfGhI
    meldpunt subscriptions set example-platform --sets police-nl --categories baseline
    meldpunt subscriptions show example-platform

The database is the configured one (``database_url``), migrated on first use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from meldpunt import checks, clock, registry
from meldpunt.checks import ChecksError, KeyInfo, OrgInfo, OrgKind, Role, Subscription
from meldpunt.cli.common import fail as _fail
from meldpunt.cli.common import group, is_narrow, registry_session
from meldpunt.cli.common import stderr as _stderr
from meldpunt.cli.common import stdout as _stdout
from meldpunt.cli.common import table as _table

__all__ = ["keys_app", "orgs_app", "subscriptions_app"]

ACTOR = "cli"

orgs_app = group(
    "Organisations that use the check service (platforms, hotlines, authorities, partners)."
)
keys_app = group("API keys of organisations: create (shown once), list, revoke.")
subscriptions_app = group("Which blocklists and categories an organisation's checks run against.")


class ListFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")]


@contextmanager
def checks_session() -> Iterator[Session]:
    """The registry's session (configured database, migrated first); check-service and
    registry errors end the command with their message and exit code 1."""
    try:
        with registry_session() as session:
            yield session
    except ChecksError as exc:
        _fail(str(exc))


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- orgs ----------------------------------------------------------------------------------------


def _org_record(info: OrgInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "kind": info.kind,
        "contact_email": info.contact_email,
        "created_at": info.created_at.isoformat(),
        "disabled": info.disabled,
        "show_distances": info.show_distances,
    }


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. example-platform.")],
    kind: Annotated[OrgKind, typer.Option("--kind", help="What the organisation is.")],
    email: Annotated[
        str | None, typer.Option("--email", help="Contact address for follow-up.")
    ] = None,
) -> None:
    """Create an organisation."""
    with checks_session() as session:
        info = checks.create_org(session, name, kind.value, contact_email=email, actor=ACTOR)
    print(f"created {info.kind} organisation {info.name!r} (id {info.id})")


@orgs_app.command("distances")
def orgs_distances(
    name: Annotated[str, typer.Argument(help="The organisation's name or id.")],
    show: Annotated[
        bool,
        typer.Option(
            "--show/--hide",
            help="Show PDQ distances in its check answers (they help recover listed hashes).",
        ),
    ],
) -> None:
    """Allow an organisation PDQ distances in its check answers, or stop them (audited)."""
    with checks_session() as session:
        info = checks.set_show_distances(session, name, show, actor=ACTOR)
    shown = "shows" if info.show_distances else "does not show"
    print(f"{info.name!r}: check answers {shown} distances (services notice within seconds)")


@orgs_app.command("list")
def orgs_list(output_format: FormatOption = ListFormat.table) -> None:
    """List the organisations."""
    with checks_session() as session:
        orgs = checks.list_orgs(session)
    if output_format is ListFormat.json:
        print(json.dumps([_org_record(o) for o in orgs], indent=2))
        return
    table = _table("organisations")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("contact", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for o in orgs:
        state = "disabled" if o.disabled else "active"
        table.add_row(str(o.id), o.name, o.kind, o.contact_email or "", _day(o.created_at), state)
    _stdout().print(table)


# --- keys ----------------------------------------------------------------------------------------


def _key_state(info: KeyInfo) -> str:
    if info.revoked_at is not None:
        return "revoked"
    if info.expires_at is not None and info.expires_at <= clock.now():
        return "expired"
    return "active" if info.active else "org disabled"


def _key_record(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "org_id": info.org_id,
        "org": info.org_name,
        "role": info.role,
        "label": info.label,
        "prefix": info.prefix,
        "created_at": _iso(info.created_at),
        "expires_at": _iso(info.expires_at),
        "revoked_at": _iso(info.revoked_at),
        "last_used_at": _iso(info.last_used_at),
        "state": _key_state(info),
    }


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Argument(help="The organisation's name or id.")],
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    label: Annotated[
        str | None, typer.Option("--label", help="What the key is for, e.g. the system using it.")
    ] = None,
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", min=1, help="Let the key expire after N days."),
    ] = None,
) -> None:
    """Create an API key. The key is printed once, on standard output, and never again."""
    expires_at = None if expires_days is None else clock.now() + timedelta(days=expires_days)
    with checks_session() as session:
        info, key = checks.create_key(
            session, org, role.value, label=label, expires_at=expires_at, actor=ACTOR
        )
    err = _stderr()
    expiry = f", expires {_when(info.expires_at)} UTC" if info.expires_at else ""
    err.print(
        f"created {info.role} key {info.id} ({info.prefix}…) for {info.org_name!r}{expiry}",
        highlight=False,
    )
    # The key alone on standard output, so that scripts can capture it.
    print(key)
    err.print(
        "[yellow]warning:[/yellow] store this key now: it cannot be shown again "
        "(only its hash is kept). Lost keys are revoked and replaced.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    org: Annotated[
        str | None, typer.Argument(help="Only this organisation's keys (name or id).")
    ] = None,
    output_format: FormatOption = ListFormat.table,
) -> None:
    """List API keys by their prefix (the keys themselves are not kept)."""
    with checks_session() as session:
        keys = checks.list_keys(session, org)
    if output_format is ListFormat.json:
        print(json.dumps([_key_record(k) for k in keys], indent=2))
        return
    console = _stdout()
    narrow = is_narrow(console)
    # A narrow terminal gets the day a key was last used and leaves out when it was created
    # and when it expires (its state says whether it has expired).
    when = _day if narrow else _when
    caption = "creation and expiry: --format json" if narrow else None
    table = _table("API keys", caption)
    table.add_column("id", justify="right", no_wrap=True)
    for column in ("organisation", "role", "prefix"):
        table.add_column(column, no_wrap=True)
    table.add_column("label")
    dates = ("last used",) if narrow else ("created", "expires", "last used")
    for column in dates:
        table.add_column(column, no_wrap=narrow)
    table.add_column("state", no_wrap=True)
    for k in keys:
        moments = {"created": k.created_at, "expires": k.expires_at, "last used": k.last_used_at}
        table.add_row(
            str(k.id),
            k.org_name,
            k.role,
            f"{k.prefix}…",
            k.label or "",
            *(when(moments[column]) for column in dates),
            _key_state(k),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id, its prefix (as listed), or the key.")],
) -> None:
    """Revoke an API key for good."""
    with checks_session() as session:
        info = checks.revoke_key(session, key, actor=ACTOR)
    print(f"revoked key {info.id} ({info.prefix}…) of {info.org_name!r}")


# --- subscriptions -------------------------------------------------------------------------------


def _split(values: str | None) -> list[str] | None:
    if values is None:
        return None
    return [part.strip() for part in values.split(",") if part.strip()]


def _subscription_record(session: Session, org: OrgInfo, sub: Subscription) -> dict[str, Any]:
    names = None
    if sub.set_ids is not None:
        names = sorted(registry.get_set(session, set_id).name for set_id in sub.set_ids)
    return {
        "org": org.name,
        "org_id": org.id,
        "sets": names,
        "categories": None if sub.categories is None else sorted(sub.categories),
    }


def _print_subscription(record: dict[str, Any]) -> None:
    sets = ", ".join(record["sets"]) if record["sets"] is not None else "every active blocklist"
    categories = record["categories"]
    shown = ", ".join(categories) if categories is not None else "every category"
    print(f"{record['org']}: sets: {sets}; categories: {shown}")


@subscriptions_app.command("set")
def subscriptions_set(
    org: Annotated[str, typer.Argument(help="The organisation's name or id.")],
    sets: Annotated[
        str | None,
        typer.Option("--sets", help="Blocklists by name, comma-separated (default: all)."),
    ] = None,
    categories: Annotated[
        str | None,
        typer.Option(
            "--categories",
            help="Category filters, comma-separated: baseline, illegal, csam, ncii or codes "
            "(default: illegal).",
        ),
    ] = None,
) -> None:
    """Set which blocklists and categories the organisation's checks run against. Leaving
    --sets out means every blocklist, leaving --categories out the illegal categories."""
    set_names = _split(sets)
    if set_names == []:
        _fail("--sets names no set: leave it out for every blocklist")
    with checks_session() as session:
        sub = checks.set_subscription(
            session, org, sets=set_names, categories=categories, actor=ACTOR
        )
        record = _subscription_record(session, checks.get_org(session, sub.org_id), sub)
    _print_subscription(record)


@subscriptions_app.command("show")
def subscriptions_show(
    org: Annotated[str, typer.Argument(help="The organisation's name or id.")],
    output_format: FormatOption = ListFormat.table,
) -> None:
    """Show the organisation's subscription."""
    with checks_session() as session:
        info = checks.get_org(session, org)
        record = _subscription_record(session, info, checks.get_subscription(session, info.id))
    if output_format is ListFormat.json:
        print(json.dumps(record, indent=2))
        return
    _print_subscription(record)

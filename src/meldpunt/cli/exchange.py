"""``meldpunt partners ...`` and ``meldpunt exchange ...``: linking this instance with others.

    meldpunt exchange key                       # our public key, to give to partners
    meldpunt partners add nl --url https://meldpunt.example.nl --public-key KEY \\
        --send police --receive police-nl:from-nl --token mpx_...
    meldpunt partners list
    meldpunt exchange pull                      # follow every partner's sets now
    meldpunt exchange status                    # how far behind each followed set is

The database is the configured one (``database_url``), migrated on first use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from meldpunt import exchange
from meldpunt.cli.common import fail, group, registry_session, stderr, stdout, table
from meldpunt.config import get_settings
from meldpunt.exchange import ExchangeError, FollowResult, PartnerInfo
from meldpunt.exchange.feeds import DEFAULT_PAGE, MAX_PAGE
from meldpunt.reports.fetcher import FetchPolicy
from meldpunt.store import get_engine, init_db, make_sessionmaker

__all__ = ["exchange_app", "partners_app"]

ACTOR = "cli"

partners_app = group("Partners: other instances we send sets to and follow sets from.")
exchange_app = group("The exchange with partners: our key, pulling their feeds, how far behind.")


@contextmanager
def exchange_session() -> Iterator[Session]:
    try:
        with registry_session() as session:
            yield session
    except ExchangeError as exc:
        fail(str(exc))


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _record(info: PartnerInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "url": info.url,
        "public_key": info.public_key,
        "key_fingerprint": info.key_fingerprint,
        "active": info.active,
        "may_read_our_feeds": info.can_read,
        "send_sets": list(info.send_sets),
        "send_categories": None if info.send_categories is None else list(info.send_categories),
        "follows": [
            {
                "remote_set": f.remote_set,
                "local_set": f.local_set,
                "categories": None if f.categories is None else list(f.categories),
                "after": f.after_seq,
                "head": f.remote_head,
                "behind_changes": f.behind,
                "behind_seconds": f.seconds_behind,
                "changes_applied": f.changes_applied,
                "last_success_at": None
                if f.last_success_at is None
                else f.last_success_at.isoformat(),
                "failures": f.failures,
                "last_error": f.last_error,
            }
            for f in info.follows
        ],
    }


def _partners_unless_json(as_json: bool) -> list[PartnerInfo] | None:
    """The partners for a table; None when they were printed as JSON (``--json``)."""
    with exchange_session() as session:
        partners = exchange.list_partners(session)
    if as_json:
        print(json.dumps([_record(p) for p in partners], indent=2))
        return None
    return partners


Send = Annotated[
    list[str] | None,
    typer.Option("--send", help="A set of ours the partner may read (repeat, or a,b)."),
]
SendCategories = Annotated[
    list[str] | None,
    typer.Option("--send-categories", help="Only these categories go out (default: all)."),
]
Receive = Annotated[
    list[str] | None,
    typer.Option(
        "--receive",
        help="A set of the partner's to follow: THEIRS or THEIRS:OURS (ours is made if missing).",
    ),
]
ReceiveCategories = Annotated[
    list[str] | None,
    typer.Option("--receive-categories", help="Only these categories come in (default: all)."),
]
Token = Annotated[
    str | None,
    typer.Option("--token", help="The token the partner issued us to read its feeds."),
]


@partners_app.command("add")
def partners_add(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. hotline-be.")],
    url: Annotated[str, typer.Option("--url", help="The partner's base URL.")],
    public_key: Annotated[
        str, typer.Option("--public-key", help="The partner's key (meldpunt exchange key there).")
    ],
    send: Send = None,
    send_categories: SendCategories = None,
    receive: Receive = None,
    receive_categories: ReceiveCategories = None,
    token: Token = None,
) -> None:
    """Add a partner; prints the token it reads our feeds with (shown once)."""
    with exchange_session() as session:
        info, issued = exchange.add_partner(
            session,
            name,
            url=url,
            public_key=public_key,
            send_sets=_split(send) or [],
            send_categories=_split(send_categories),
            receive=[exchange.parse_receive(r) for r in _split(receive) or []],
            receive_categories=_split(receive_categories),
            remote_token=token,
            actor=ACTOR,
        )
    print(f"added partner {info.name!r} (key {info.key_fingerprint})")
    if issued:
        print(f"token for {info.name} to read {', '.join(info.send_sets)} (shown once): {issued}")


@partners_app.command("set")
def partners_set(
    name: Annotated[str, typer.Argument(help="The partner's name.")],
    url: Annotated[str | None, typer.Option("--url")] = None,
    public_key: Annotated[
        str | None, typer.Option("--public-key", help="A new key (after the partner changed it).")
    ] = None,
    send: Send = None,
    send_categories: SendCategories = None,
    all_categories: Annotated[
        bool, typer.Option("--all-categories", help="Send every category again.")
    ] = False,
    receive: Receive = None,
    receive_categories: ReceiveCategories = None,
    token: Token = None,
) -> None:
    """Change a partner's address, key, token or rules."""
    with exchange_session() as session:
        info = exchange.update_partner(
            session,
            name,
            url=url,
            public_key=public_key,
            remote_token=token,
            send_sets=_split(send),
            send_categories=_split(send_categories),
            all_categories=all_categories,
            receive=[exchange.parse_receive(r) for r in _split(receive) or []],
            receive_categories=_split(receive_categories),
            actor=ACTOR,
        )
    print(f"partner {info.name!r} changed (key {info.key_fingerprint})")


@partners_app.command("token")
def partners_token(name: Annotated[str, typer.Argument(help="The partner's name.")]) -> None:
    """Issue a new token for the partner to read our feeds (the old one stops working)."""
    with exchange_session() as session:
        token = exchange.issue_token(session, name, actor=ACTOR)
    print(token)


@partners_app.command("disable")
def partners_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Stop serving feeds to the partner and pulling its own."""
    with exchange_session() as session:
        exchange.set_partner_state(session, name, enabled=False, actor=ACTOR)
    print(f"partner {name!r} disabled")


@partners_app.command("enable")
def partners_enable(name: Annotated[str, typer.Argument()]) -> None:
    with exchange_session() as session:
        exchange.set_partner_state(session, name, enabled=True, actor=ACTOR)
    print(f"partner {name!r} enabled")


@partners_app.command("list")
def partners_list(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The partners, what goes out to them and what comes in from them."""
    partners = _partners_unless_json(as_json)
    if partners is None:
        return
    shown = table("partners")
    shown.add_column("name", no_wrap=True)
    shown.add_column("url", overflow="fold")
    shown.add_column("key", no_wrap=True)
    shown.add_column("out", overflow="fold")
    shown.add_column("in", overflow="fold")
    shown.add_column("state", no_wrap=True)
    for p in partners:
        incoming = ", ".join(f"{f.remote_set}->{f.local_set}" for f in p.follows)
        shown.add_row(
            p.name,
            p.url,
            p.key_fingerprint,
            ", ".join(p.send_sets),
            incoming,
            "active" if p.active else "disabled",
        )
    stdout().print(shown)


@exchange_app.command("key")
def exchange_key() -> None:
    """This instance's public key (give it to partners) and its fingerprint."""
    key = exchange.instance_key(get_settings().data_dir)
    print(key.public)
    stderr().print(f"fingerprint {key.fingerprint} (read it out to the partner to confirm)")


@exchange_app.command("status")
def exchange_status(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """How far behind each followed set is, and its last failure."""
    partners = _partners_unless_json(as_json)
    if partners is None:
        return
    shown = table("followed sets")
    for column in ("partner", "set", "applied", "behind", "s behind", "last pull", "failure"):
        shown.add_column(column, overflow="fold")
    for p in partners:
        for f in p.follows:
            shown.add_row(
                p.name,
                f"{f.remote_set}->{f.local_set}",
                str(f.after_seq),
                str(f.behind),
                f"{f.seconds_behind:.0f}",
                _when(f.last_success_at),
                f.last_error or "",
            )
    stdout().print(shown)


@exchange_app.command("pull")
def exchange_pull(
    partner: Annotated[
        str | None, typer.Argument(help="One partner (default: every active partner).")
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(
            "--page-size",
            min=1,
            max=MAX_PAGE,
            help="Changes a page (default: 10,000, growing while far behind).",
        ),
    ] = None,
) -> None:
    """Follow the partners' sets now: every page verified, applied in one transaction each."""
    settings = get_settings()
    init_db()
    sessions = make_sessionmaker(get_engine())
    policy = exchange.partner_policy(FetchPolicy.from_settings(settings))
    show = sys.stderr.isatty()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        disable=not show,
    )
    tasks: dict[tuple[str, str], Any] = {}

    def on_page(result: FollowResult) -> None:
        key = (result.partner, result.remote_set)
        if key not in tasks:
            tasks[key] = progress.add_task(f"{result.partner}/{result.remote_set}", total=None)
        progress.update(tasks[key], completed=result.after, total=max(result.head, 1))

    try:
        with progress:
            results = exchange.pull(
                sessions,
                partner,
                policy,
                limit=page_size or DEFAULT_PAGE,
                on_page=on_page,
                catch_up=None if page_size else MAX_PAGE,
            )
    except ExchangeError as exc:
        fail(str(exc))
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            stderr().print(f"[red]{r.partner}/{r.remote_set}:[/red] {r.error}", highlight=False)
        else:
            print(
                f"{r.partner}/{r.remote_set}: {r.changes} changes in {r.pages} pages "
                f"({r.bytes:,} bytes), now at {r.after} of {r.head}"
            )
    if failed:
        raise typer.Exit(1)

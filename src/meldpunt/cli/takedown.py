"""``meldpunt attribution|contacts|forwards ...``: the IP-to-ASN table, the abuse-contact
directory and the forward records of material hosted abroad.

    meldpunt attribution load ip2asn-v4.tsv --replace
    meldpunt attribution load ipasn.dat --format pyasn
    meldpunt attribution load --sim
    meldpunt attribution lookup images.example.net
    meldpunt contacts add "Example Hosting" --asn 64500 --email abuse@example.net --country NL
    meldpunt contacts approve "Example Hosting"
    meldpunt contacts list
    meldpunt contacts export contacts.csv --format csv
    meldpunt contacts import contacts.json --format json
    meldpunt forwards export --format csv --since 2025-03-01

The database is the configured one (``database_url``), migrated on first use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from sqlalchemy.orm import Session

from meldpunt.cli.common import fail, group, registry_session, stderr, stdout, table
from meldpunt.reports.errors import ReportsError

__all__ = ["attribution_app", "contacts_app", "forwards_app"]

ACTOR = "cli"

attribution_app = group("The IP-to-ASN table: which network and owner an address belongs to.")
contacts_app = group("The abuse-contact directory: whom notices go to, per network or domain.")
forwards_app = group("Forward records of material hosted abroad, for the hosting country.")


class TableFormat(StrEnum):
    csv = "csv"
    pyasn = "pyasn"


class DataFormat(StrEnum):
    csv = "csv"
    json = "json"


class ListFormat(StrEnum):
    table = "table"
    json = "json"


@contextmanager
def takedown_session() -> Iterator[Session]:
    """The configured database's session; the hotline's errors end the command."""
    try:
        with registry_session() as session:
            yield session
    except ReportsError as exc:
        fail(str(exc))


def _read(file: Path) -> str:
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        fail(f"{file} is not UTF-8 text (byte {exc.start + 1:,}); save it as UTF-8")


def _write(file: str, text: str) -> None:
    if file == "-":
        sys.stdout.write(text)
        return
    try:
        Path(file).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror or exc}")


# --- attribution ---------------------------------------------------------------------------------


@attribution_app.command("load")
def load_command(
    file: Annotated[
        Path | None, typer.Argument(help="The table file (- for standard input).")
    ] = None,
    table_format: Annotated[
        TableFormat,
        typer.Option(
            "--format",
            "-f",
            help="csv: start,end,asn[,org[,country]] ranges; pyasn: 'prefix asn' lines.",
        ),  # fmt: skip
    ] = TableFormat.csv,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the whole table (default: merge into it).")
    ] = False,
    sim: Annotated[
        bool, typer.Option("--sim", help="Load the small table shipped for the simulation.")
    ] = False,
) -> None:
    """Load an IP-to-ASN table. Bad lines are listed with their number and skipped."""
    from meldpunt.takedown import asn

    if sim == (file is not None):
        fail("name a FILE or give --sim (one of them)")
    source: Path = asn.sim_table() if file is None else file
    if str(source) == "-":
        lines: Any = sys.stdin
    else:
        if not source.is_file():
            fail(f"cannot read {source}: no such file")
        lines = source
    with takedown_session() as session:
        result = asn.load_table(session, lines, table_format.value, replace=replace, actor=ACTOR)
    err = stderr()
    for problem in result.problems:
        err.print(f"  {problem}", highlight=False, markup=False)
    if result.bad > len(result.problems):
        err.print(f"  ... and {result.bad - len(result.problems)} more", highlight=False)
    how = "replaced the table" if replace else "merged"
    print(f"{result.taken} prefixes taken from {result.lines} lines ({how}; {result.bad} bad, "
          f"{result.skipped} not routed); the table holds {result.total}")  # fmt: skip


@attribution_app.command("lookup")
def lookup_command(
    target: Annotated[str, typer.Argument(help="A host name, an IP address or a URL.")],
    output_format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.table,
) -> None:
    """Where a host is hosted: its addresses (by meldpunt's resolver), networks and contact."""
    from meldpunt.config import get_settings
    from meldpunt.reports.fetcher import FetchPolicy
    from meldpunt.reports.items import normalise_url
    from meldpunt.takedown import asn, attribution, directory

    settings = get_settings()
    try:
        url = normalise_url(target)
    except ReportsError as exc:
        fail(str(exc))
    host = (urlsplit(url).hostname or "").lower()
    with takedown_session() as session:
        table_now = asn.table_for(session)
        location = attribution.locate(url, host, FetchPolicy.from_settings(settings), table_now)
        networks = {a: table_now.lookup(a) for a in location.addresses}
        found = directory.Directory.load(session, [host], [location.asn], [location.org])
        outcome = attribution.attribute(host, location, found, settings.hotline_country)
        contact = outcome.contact
        record: dict[str, Any] = {
            "host": host,
            "addresses": [
                {"ip": a, "prefix": n.prefix if n else None, "asn": n.asn if n else None,
                 "org": n.org if n else None, "country": n.country if n else None}
                for a, n in networks.items()
            ],
            "problem": location.problem,
            "contact": None if contact is None else contact.name,
            "contact_email": None if contact is None else contact.email,
            "contact_approved": None if contact is None else bool(contact.approved),
            "country": outcome.country,
            "outcome": str(outcome.state),
            "why": outcome.why,
        }  # fmt: skip
    if output_format is ListFormat.json:
        print(json.dumps(record, indent=2))
        return
    shown = table(f"{host}")
    for column in ("address", "prefix", "AS", "owner", "country"):
        shown.add_column(column, no_wrap=column != "owner")
    for a in record["addresses"]:
        shown.add_row(a["ip"], a["prefix"] or "—", "" if a["asn"] is None else f"AS{a['asn']}",
                      a["org"] or "", a["country"] or "")  # fmt: skip
    out = stdout()
    if record["addresses"]:
        out.print(shown)
    if location.problem:
        out.print(f"problem: {location.problem}", highlight=False, markup=False)
    if contact is not None:
        approved = "approved" if contact.approved else "NOT approved"
        out.print(f"contact: {contact.name} <{contact.email or 'no e-mail'}> ({approved})",
                  highlight=False, markup=False)  # fmt: skip
    outcome_line = f"outcome: {outcome.state}" + (f" ({outcome.why})" if outcome.why else "")
    out.print(outcome_line, highlight=False, markup=False)


# --- contacts ------------------------------------------------------------------------------------


class ContactKindOption(StrEnum):
    hoster = "hoster"
    police = "police"


@contacts_app.command("add")
def contacts_add(
    name: Annotated[str, typer.Argument(help="A unique name for the abuse desk.")],
    email: Annotated[str | None, typer.Option("--email", help="Where notices go.")] = None,
    asn_number: Annotated[
        str | None, typer.Option("--asn", help="The AS number it covers (64500 or AS64500).")
    ] = None,
    org: Annotated[
        str | None,
        typer.Option("--org", help="The network owner it covers (as the table names it)."),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option("--domain", help="A host name it covers, with every name under it."),
    ] = None,
    country: Annotated[str | None, typer.Option("--country", help="Two-letter code.")] = None,
    kind: Annotated[ContactKindOption, typer.Option("--kind")] = ContactKindOption.hoster,
    approved: Annotated[bool, typer.Option("--approved", help="Approve it at once.")] = False,
    group_seconds: Annotated[
        int | None, typer.Option("--group-seconds", min=0, help="Grouping window of notices.")
    ] = None,
    hold_weekends: Annotated[
        bool, typer.Option("--hold-weekends", help="Hold notices over weekends.")
    ] = False,
    organisation: Annotated[
        str | None,
        typer.Option("--organisation", help="The hoster organisation whose keys answer by API."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
) -> None:
    """Add an abuse contact to the directory."""
    from meldpunt.takedown import directory

    with takedown_session() as session:
        info = directory.add_contact(
            session, name, actor=ACTOR, kind=kind.value, email=email, asn=asn_number, org=org,
            domain=domain, country=country, approved=approved, group_seconds=group_seconds,
            hold_weekends=hold_weekends, organisation=organisation, note=note,
        )  # fmt: skip
    state = "approved" if info.approved else "not approved"
    print(f"added contact {info.name!r} (id {info.id}) for {info.rule}, {state}")


@contacts_app.command("approve")
def contacts_approve(
    name: Annotated[str, typer.Argument(help="The contact's name or id.")],
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Withdraw the approval instead.")
    ] = False,
) -> None:
    """Approve a contact (notices go to it), or withdraw the approval."""
    from meldpunt.takedown import directory

    with takedown_session() as session:
        info = directory.approve_contact(session, name, actor=ACTOR, approved=not withdraw)
    print(f"{info.name!r} is {'approved' if info.approved else 'not approved'}")


@contacts_app.command("remove")
def contacts_remove(name: Annotated[str, typer.Argument(help="The contact's name or id.")]) -> None:
    """Remove a contact nothing was sent to (else withdraw its approval)."""
    from meldpunt.takedown import directory

    with takedown_session() as session:
        directory.remove_contact(session, name, actor=ACTOR)
    print(f"removed {name!r}")


@contacts_app.command("list")
def contacts_list(
    output_format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.table,
    kind: Annotated[ContactKindOption | None, typer.Option("--kind")] = None,
) -> None:
    """List the directory."""
    from meldpunt.takedown import directory

    with takedown_session() as session:
        found = directory.list_contacts(session, kind=None if kind is None else kind.value)
    if output_format is ListFormat.json:
        print(json.dumps([{"id": c.id, **c.record()} for c in found], indent=2))
        return
    shown = table("abuse contacts")
    for column in ("id", "name", "kind", "rule", "country", "e-mail", "approved", "group"):
        shown.add_column(column, no_wrap=column not in ("name", "rule"),
                         justify="right" if column in ("id", "group") else "left")  # fmt: skip
    for c in found:
        shown.add_row(str(c.id), c.name, c.kind, c.rule, c.country or "", c.email or "",
                      "yes" if c.approved else "no", f"{c.group_seconds}s")  # fmt: skip
    stdout().print(shown)


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="A CSV or JSON export (- for standard input).")],
    data_format: Annotated[DataFormat, typer.Option("--format", "-f")] = DataFormat.csv,
) -> None:
    """Add or update (by name) the contacts of a file; bad records are listed and skipped."""
    from meldpunt.takedown import directory

    data = _read(file)
    with takedown_session() as session:
        result = directory.import_contacts(session, data, data_format.value, actor=ACTOR)
    err = stderr()
    for problem in result.problems:
        err.print(f"  {problem}", highlight=False, markup=False)
    print(f"{result.added} added, {result.updated} updated, {len(result.problems)} refused")


@contacts_app.command("export")
def contacts_export(
    file: Annotated[str, typer.Argument(help="The file to write, or - for standard output.")] = "-",
    data_format: Annotated[DataFormat, typer.Option("--format", "-f")] = DataFormat.csv,
) -> None:
    """Write the directory as CSV or JSON (what ``contacts import`` reads)."""
    from meldpunt.takedown import directory

    with takedown_session() as session:
        text = directory.export_contacts(session, data_format.value)
    _write(file, text)


# --- forwards ------------------------------------------------------------------------------------


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since must be an ISO date or time (2025-03-01 or 2025-03-01T09:00), not {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@forwards_app.command("export")
def forwards_export(
    data_format: Annotated[DataFormat, typer.Option("--format", "-f")] = DataFormat.json,
    since: Annotated[
        str | None, typer.Option("--since", help="Only records made at or after (ISO, UTC).")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="The file to write, or - for standard output.")
    ] = "-",
) -> None:
    """Forward records of material hosted abroad (hosting country, address, network owner,
    classification, actions), as JSON or CSV."""
    from meldpunt.takedown import forwards

    moment = _since(since)
    with takedown_session() as session:
        text = forwards.export_forwards(session, moment, data_format.value)
    _write(output, text)

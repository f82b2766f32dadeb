"""The simulation's tables for meldpunt: its IP-to-ASN table and its abuse directory.

Each hoster is its own AS (a private 32-bit number) and network owner, with its one address
as its network. Its abuse desk is ``abuse@hN.sim.test``, which the mail sink delivers to it.
Drawn from the seed: most contacts approved, a few unapproved and a few missing (so that
meldpunt's "contact needed" queue has work), and one police contact.

``write_tables`` writes them as files (``asn.csv`` in the ``start,end,asn,org`` shape of public
IP-to-ASN data with a country column, ``directory.csv`` in the directory's export shape);
``load_tables`` puts them into meldpunt's database.
"""

from __future__ import annotations

import csv
import ipaddress
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from meldpunt.sim.internet import DOMAIN, Internet
from meldpunt.takedown import asn, directory

__all__ = [
    "POLICE_EMAIL",
    "POLICE_NAME",
    "Contact",
    "Network",
    "TableFiles",
    "contacts",
    "load_tables",
    "networks",
    "write_tables",
]

POLICE_NAME = "Sim police (child abuse unit)"
POLICE_EMAIL = f"police@politie.{DOMAIN}"
UNAPPROVED = 0.05  # share of hosters whose contact is in the directory but not approved
MISSING = 0.03  # share of hosters with no contact at all


@dataclass(frozen=True)
class Network:
    start: str
    end: str
    asn: int
    org: str
    country: str

    @property
    def prefixes(self) -> list[str]:
        first, last = ipaddress.ip_address(self.start), ipaddress.ip_address(self.end)
        return [str(net) for net in ipaddress.summarize_address_range(first, last)]


@dataclass(frozen=True)
class Contact:
    name: str
    kind: str  # hoster, police
    email: str
    asn: int | None
    org: str | None
    country: str
    approved: bool


def networks(internet: Internet) -> list[Network]:
    return [
        Network(h.address, h.address, h.asn, h.org, h.country) for h in internet.hosters.values()
    ]


def contacts(internet: Internet, *, home: str = "NL") -> list[Contact]:
    """The directory: the police contact, then one contact per hoster that has one."""
    rng = random.Random(f"directory:{internet.seed}")
    found = [Contact(POLICE_NAME, "police", POLICE_EMAIL, None, None, home, True)]
    for hoster in internet.hosters.values():
        draw = rng.random()
        if draw < MISSING:
            continue
        found.append(
            Contact(
                name=f"{hoster.org} abuse desk",
                kind="hoster",
                email=hoster.abuse_email,
                asn=hoster.asn,
                org=hoster.org,
                country=hoster.country,
                approved=draw >= MISSING + UNAPPROVED,
            )
        )
    return found


#: The directory file's columns: those of ``meldpunt``'s directory export.
DIRECTORY_FIELDS = (
    "name", "kind", "email", "asn", "network_owner", "domain", "country", "approved",
    "group_seconds", "hold_weekends", "organisation", "note",
)  # fmt: skip


@dataclass(frozen=True)
class TableFiles:
    asn: Path  # start,end,asn,org,country
    directory: Path  # DIRECTORY_FIELDS


def write_tables(internet: Internet, folder: Path, *, home: str = "NL") -> TableFiles:
    """The networks as ``asn.csv`` (the ``start,end,asn,org`` ranges of public IP-to-ASN data,
    with a country column) and the contacts as ``directory.csv`` (the directory's own CSV)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = TableFiles(folder / "asn.csv", folder / "directory.csv")
    with files.asn.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["start", "end", "asn", "org", "country"])
        writer.writerows([n.start, n.end, n.asn, n.org, n.country] for n in networks(internet))
    with files.directory.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DIRECTORY_FIELDS)
        for c in contacts(internet, home=home):
            note = "the simulation's police" if c.kind == "police" else "simulated hoster"
            writer.writerow([c.name, c.kind, c.email, c.asn or "", c.org or "", "", c.country,
                             "true" if c.approved else "false", "", "false", "", note])  # fmt: skip
    return files


def load_tables(session: Session, files: TableFiles, *, actor: str = "sim") -> tuple[int, int]:
    """Load the table files into meldpunt's database through its own loaders (the IP-to-ASN
    table merged, ``takedown.asn.load_table``; the contacts added or updated by name,
    ``takedown.directory.import_contacts``), in the session's transaction. Returns (networks,
    contacts) taken; raises ``ValueError`` when a line was refused (a fault of this module)."""
    loaded = asn.load_table(session, files.asn, "csv", replace=False, actor=actor)
    if loaded.bad:
        raise ValueError(f"{files.asn}: {loaded.bad} line(s) refused: {loaded.problems[:3]}")
    text = files.directory.read_text(encoding="utf-8")
    imported = directory.import_contacts(session, text, "csv", actor=actor)
    if imported.problems:
        raise ValueError(f"{files.directory}: {imported.problems[:3]}")
    return loaded.taken, imported.added + imported.updated

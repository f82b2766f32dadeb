"""The curated abuse-contact directory: who is told about material on which network.

A contact's rule names a host name (``domain``: the name and every name under it, for resellers
and CDNs that share a network owner's addresses), an AS number (``asn``) or a network owner
(``org``, compared without regard to case). The most specific rule wins: a domain rule (the
longest matching name) over an ASN rule, an ASN rule over an org rule; between contacts of one
rule, an approved one first. Notices go only to approved contacts; the attribution puts an item
whose contact is missing or not approved in the analysts' "contact needed" queue.

Police contacts (``kind='police'``) are told first when an analyst grades "first police"; they
are kept here too, with the same fields, and never chosen by ``find_contact``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from meldpunt import audit, checks, clock
from meldpunt.config import get_settings
from meldpunt.reports.errors import Conflict, InvalidInput, NotFound
from meldpunt.store.models import AbuseContact, Notice, Organisation, UrlItem
from meldpunt.takedown.vocabulary import CONTACT_KINDS, ContactKind
from meldpunt.text import TextError, check_name, check_text, could_be_name

__all__ = [
    "EXPORT_FIELDS",
    "ContactInfo",
    "Directory",
    "ImportResult",
    "add_contact",
    "approve_contact",
    "domain_suffixes",
    "export_contacts",
    "find_contact",
    "get_contact",
    "import_contacts",
    "list_contacts",
    "normalise_domain",
    "remove_contact",
    "update_contact",
]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
# One plain address: no characters that an address header reads as separators, groups, quotes
# or comments ('a,b@x.nl' is two recipients, 'a:b;@x.nl' a group of none).
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\.]+(\.[^@\s<>(),;:\"\[\]\\.]+)+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: The fields of an exported contact, in order (CSV columns and JSON keys).
EXPORT_FIELDS = ("name", "kind", "email", "asn", "network_owner", "domain", "country", "approved",
                 "group_seconds", "hold_weekends", "organisation", "note")  # fmt: skip
_CHANGEABLE = ("kind", "email", "asn", "org", "domain", "country", "approved", "group_seconds",
               "hold_weekends", "organisation", "note")  # fmt: skip
_UNSET: Any = object()


@dataclass(frozen=True)
class ContactInfo:
    id: int
    name: str
    kind: str
    email: str | None
    asn: int | None
    org: str | None  # the network owner the rule names
    domain: str | None
    country: str | None
    approved: bool
    group_seconds: int
    hold_weekends: bool
    org_id: int | None  # the hoster organisation whose keys may answer by API
    organisation: str | None  # its name
    note: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def rule(self) -> str:
        """What the contact applies to, in words."""
        parts = []
        if self.domain:
            parts.append(f"*.{self.domain}")
        if self.asn is not None:
            parts.append(f"AS{self.asn}")
        if self.org:
            parts.append(self.org)
        return ", ".join(parts) or "—"

    def record(self) -> dict[str, Any]:
        """The contact as the export writes it."""
        return {
            "name": self.name, "kind": self.kind, "email": self.email, "asn": self.asn,
            "network_owner": self.org, "domain": self.domain, "country": self.country,
            "approved": self.approved, "group_seconds": self.group_seconds,
            "hold_weekends": self.hold_weekends, "organisation": self.organisation,
            "note": self.note,
        }  # fmt: skip


def _info(row: AbuseContact, organisation: str | None) -> ContactInfo:
    return ContactInfo(
        id=row.id, name=row.name, kind=row.kind, email=row.email, asn=row.asn, org=row.org,
        domain=row.domain, country=row.country, approved=bool(row.approved),
        group_seconds=row.group_seconds, hold_weekends=bool(row.hold_weekends),
        org_id=row.org_id, organisation=organisation, note=row.note,
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def _org_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    query = select(Organisation.id, Organisation.name).where(Organisation.id.in_(wanted))
    return {i: name for i, name in session.execute(query)}


def info_of(session: Session, row: AbuseContact) -> ContactInfo:
    return _info(row, _org_names(session, [row.org_id]).get(row.org_id or 0))


# --- checking what a contact says -------------------------------------------------------------


def normalise_domain(value: str) -> str:
    """A host name as a domain rule keeps it: lower case, IDNA, no trailing dot, no leading
    ``*.`` or ``.`` (a rule always covers the names under it). Raises InvalidInput."""
    text = value.strip().lower().rstrip(".")
    for prefix in ("*.", "."):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if not text:
        raise InvalidInput("the domain is empty")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(f"{value[:100]!r} is not a host name") from None
    labels = text.split(".")
    if len(text) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{value[:100]!r} is not a host name")
    return text


def domain_suffixes(host: str) -> list[str]:
    """``host`` and every name above it, most specific first: ``a.cdn.example`` gives
    ``a.cdn.example``, ``cdn.example``, ``example``."""
    labels = host.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


def _text(value: Any, what: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    text = value.strip()
    if not text:
        return None
    try:
        return check_text(text, what, max_length=max_length)
    except TextError as exc:
        raise InvalidInput(str(exc)) from None


def _email(value: Any) -> str | None:
    text = _text(value, "the e-mail address", 320)
    if text is not None and not _EMAIL.match(text):
        raise InvalidInput(f"{text[:100]!r} is not an e-mail address")
    return text


def _country(value: Any) -> str | None:
    text = _text(value, "the country", 2)
    if text is None:
        return None
    if not _COUNTRY.match(text.upper()):
        raise InvalidInput(f"the country must be a two-letter code (ISO 3166), not {text!r}")
    return text.upper()


def _asn(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidInput("the AS number must be a number")
    text = str(value).strip()
    if text[:2].upper() == "AS":
        text = text[2:]
    if not (text.isdigit() and text.isascii() and len(text) <= 10 and 0 < int(text) < 2**32):
        raise InvalidInput(
            f"the AS number must be a number from 1 to {2**32 - 1}, not {str(value)[:40]!r}"
        )
    return int(text)


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "y", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "no", "n", "off"):
        return False
    raise InvalidInput(f"{what} must be true or false, not {value!r}")


def _seconds(value: Any) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidInput(f"the grouping window must be whole seconds, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 7 * 24 * 3600:
        raise InvalidInput("the grouping window must be 0 to 604800 seconds (a week)")
    return number


def _kind(value: Any) -> str:
    if value not in CONTACT_KINDS:
        raise InvalidInput(f"the kind must be one of {', '.join(CONTACT_KINDS)}, not {value!r}")
    return str(value)


def _organisation(session: Session, value: Any) -> int | None:
    """The id of the hoster organisation named (id or name), or None for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return checks.get_org(session, value if isinstance(value, int) else str(value)).id
    except checks.ChecksError:
        raise InvalidInput(f"no organisation {value!r}") from None


def _apply(session: Session, row: AbuseContact, changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if key == "kind":
            row.kind = _kind(value)
        elif key == "email":
            row.email = _email(value)
        elif key == "asn":
            row.asn = _asn(value)
        elif key == "org":
            row.org = _text(value, "the network owner", 200)
        elif key == "domain":
            row.domain = None if not value else normalise_domain(str(value))
        elif key == "country":
            row.country = _country(value)
        elif key == "approved":
            row.approved = _flag(value, "approved")
        elif key == "group_seconds":
            row.group_seconds = _seconds(value)
        elif key == "hold_weekends":
            row.hold_weekends = _flag(value, "hold_weekends")
        elif key == "organisation":
            row.org_id = _organisation(session, value)
        elif key == "note":
            row.note = _text(value, "the note", 2000)
        else:  # pragma: no cover - callers pass known keys only
            raise InvalidInput(f"a contact has no field {key!r}")
    if row.kind == ContactKind.hoster and row.asn is None and not row.org and not row.domain:
        raise InvalidInput("a hoster's contact needs a rule: an AS number, a network owner or "
                           "a domain")  # fmt: skip
    if row.approved and not row.email:
        raise InvalidInput("a contact without an e-mail address cannot be approved")


def _row(session: Session, ref: int | str) -> AbuseContact:
    row: AbuseContact | None = None
    if isinstance(ref, int):
        row = session.get(AbuseContact, ref)
    elif could_be_name(ref):
        row = session.scalar(select(AbuseContact).where(AbuseContact.name == ref.strip()))
        if row is None and ref.strip().isdigit() and ref.strip().isascii():
            number = int(ref.strip())
            row = session.get(AbuseContact, number) if number < 2**63 else None
    if row is None:
        raise NotFound(f"no abuse contact {ref!r}")
    return row


def _details(info: ContactInfo) -> dict[str, Any]:
    return {k: v for k, v in info.record().items() if v is not None}


# --- managing the directory -------------------------------------------------------------------


def add_contact(
    session: Session,
    name: str,
    *,
    actor: str,
    kind: str = ContactKind.hoster,
    email: str | None = None,
    asn: int | str | None = None,
    org: str | None = None,
    domain: str | None = None,
    country: str | None = None,
    approved: bool = False,
    group_seconds: int | str | None = None,
    hold_weekends: bool = False,
    organisation: int | str | None = None,
    note: str | None = None,
) -> ContactInfo:
    """Add a contact (flushed, audited); its grouping window defaults to
    ``takedown_group_seconds``. Raises InvalidInput, Conflict (the name is taken)."""
    try:
        name = check_name(name, "the contact's name")
    except TextError as exc:
        raise InvalidInput(str(exc)) from None
    if session.scalar(select(AbuseContact.id).where(AbuseContact.name == name)) is not None:
        raise Conflict(f"there is already a contact named {name!r}")
    now = clock.now()
    row = AbuseContact(name=name, created_at=now, updated_at=now, kind=str(ContactKind.hoster),
                       approved=False, hold_weekends=False)  # fmt: skip
    seconds = get_settings().takedown_group_seconds if group_seconds is None else group_seconds
    _apply(session, row, {"kind": kind, "email": email, "asn": asn, "org": org, "domain": domain,
                          "country": country, "approved": approved, "group_seconds": seconds,
                          "hold_weekends": hold_weekends, "organisation": organisation,
                          "note": note})  # fmt: skip
    session.add(row)
    session.flush()
    info = info_of(session, row)
    audit.record(session, actor=actor, action="takedown.contact.added",
                 subject=("abuse_contact", row.id), details=_details(info))  # fmt: skip
    return info


def update_contact(session: Session, ref: int | str, *, actor: str, **changes: Any) -> ContactInfo:
    """Change the named fields of a contact (``kind``, ``email``, ``asn``, ``org``,
    ``domain``, ``country``, ``approved``, ``group_seconds``, ``hold_weekends``,
    ``organisation``, ``note``; ``name`` renames it). Audited with the old and new values."""
    row = _row(session, ref)
    before = info_of(session, row).record()
    unknown = set(changes) - set(_CHANGEABLE) - {"name"}
    if unknown:
        raise InvalidInput(f"a contact has no field {sorted(unknown)[0]!r}")
    if "name" in changes and changes["name"] != row.name:
        try:
            name = check_name(str(changes["name"]), "the contact's name")
        except TextError as exc:
            raise InvalidInput(str(exc)) from None
        taken = select(AbuseContact.id).where(AbuseContact.name == name, AbuseContact.id != row.id)
        if session.scalar(taken) is not None:
            raise Conflict(f"there is already a contact named {name!r}")
        row.name = name
    _apply(session, row, {k: v for k, v in changes.items() if k != "name"})
    row.updated_at = clock.now()
    session.flush()
    info = info_of(session, row)
    after = info.record()
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    audit.record(session, actor=actor, action="takedown.contact.updated",
                 subject=("abuse_contact", row.id), details={"changed": changed})  # fmt: skip
    return info


def approve_contact(
    session: Session, ref: int | str, *, actor: str, approved: bool = True
) -> ContactInfo:
    """Approve a contact (notices go to it from now on), or withdraw the approval."""
    return update_contact(session, ref, actor=actor, approved=approved)


def remove_contact(session: Session, ref: int | str, *, actor: str) -> None:
    """Remove a contact no notice and no item refers to (else Conflict: withdraw its approval
    instead, so that the record of what was sent stays whole)."""
    row = _row(session, ref)
    if session.scalar(select(exists().where(Notice.contact_id == row.id))):
        raise Conflict(f"notices were sent to {row.name!r}; withdraw its approval instead")
    if session.scalar(select(exists().where(UrlItem.contact_id == row.id))):
        raise Conflict(f"items are attributed to {row.name!r}; withdraw its approval instead")
    info = info_of(session, row)
    session.delete(row)
    session.flush()
    audit.record(session, actor=actor, action="takedown.contact.removed",
                 subject=("abuse_contact", info.id), details=_details(info))  # fmt: skip


def get_contact(session: Session, ref: int | str) -> ContactInfo:
    return info_of(session, _row(session, ref))


def list_contacts(
    session: Session,
    *,
    kind: str | None = None,
    approved: bool | None = None,
    asn: int | None = None,
) -> list[ContactInfo]:
    query = select(AbuseContact).order_by(AbuseContact.name)
    if kind is not None:
        query = query.where(AbuseContact.kind == kind)
    if approved is not None:
        query = query.where(AbuseContact.approved.is_(approved))
    if asn is not None:
        query = query.where(AbuseContact.asn == asn)
    rows = list(session.scalars(query))
    names = _org_names(session, (r.org_id for r in rows))
    return [_info(r, names.get(r.org_id or 0)) for r in rows]


# --- finding the contact of a host ------------------------------------------------------------


@dataclass
class Directory:
    """The contacts that could apply to a batch of hosts, read in one query, and the rule that
    picks one (``find``)."""

    by_domain: dict[str, list[AbuseContact]] = field(default_factory=dict)
    by_asn: dict[int, list[AbuseContact]] = field(default_factory=dict)
    by_org: dict[str, list[AbuseContact]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        session: Session,
        hosts: Iterable[str],
        asns: Iterable[int | None],
        orgs: Iterable[str | None],
    ) -> Directory:
        domains = sorted({s for h in hosts for s in domain_suffixes(h)})
        numbers = sorted({a for a in asns if a is not None})
        owners = sorted({o.lower() for o in orgs if o})
        rules = []
        if domains:
            rules.append(AbuseContact.domain.in_(domains))
        if numbers:
            rules.append(AbuseContact.asn.in_(numbers))
        if owners:
            rules.append(func.lower(AbuseContact.org).in_(owners))
        found = cls()
        if not rules:
            return found
        query = (
            select(AbuseContact)
            .where(AbuseContact.kind == ContactKind.hoster, or_(*rules))
            .order_by(AbuseContact.approved.desc(), AbuseContact.id)
        )
        for row in session.scalars(query):
            if row.domain:
                found.by_domain.setdefault(row.domain, []).append(row)
            if row.asn is not None:
                found.by_asn.setdefault(row.asn, []).append(row)
            if row.org:
                found.by_org.setdefault(row.org.lower(), []).append(row)
        return found

    def find(self, host: str, asn: int | None, org: str | None) -> AbuseContact | None:
        """The contact for ``host`` on network ``asn`` of owner ``org``: the longest domain
        rule, else the ASN's, else the owner's; approved contacts before others."""
        for suffix in domain_suffixes(host):
            if suffix in self.by_domain:
                return self.by_domain[suffix][0]
        if asn is not None and asn in self.by_asn:
            return self.by_asn[asn][0]
        if org and org.lower() in self.by_org:
            return self.by_org[org.lower()][0]
        return None


def find_contact(
    session: Session, host: str, asn: int | None, org: str | None
) -> AbuseContact | None:
    """The directory's contact for one host (see ``Directory.find``)."""
    return Directory.load(session, [host], [asn], [org]).find(host, asn, org)


# --- import and export ------------------------------------------------------------------------


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    problems: list[str] = field(default_factory=list)


def _records(data: str, fmt: str) -> list[tuple[str, Any]]:
    """(where, record) pairs of a CSV or JSON export."""
    if fmt == "json":
        try:
            loaded = json.loads(data)
        except ValueError as exc:  # broken JSON, or a number of more than 4,300 digits
            raise InvalidInput(f"not JSON: {exc}") from None
        except RecursionError:
            raise InvalidInput("not JSON this import reads: nested too deep") from None
        if isinstance(loaded, dict):
            loaded = loaded.get("contacts")
        if not isinstance(loaded, list):
            raise InvalidInput("expected a list of contacts (or {'contacts': [...]})")
        return [(f"record {i}", r) for i, r in enumerate(loaded, start=1)]
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(data, newline=""))  # lines may end with CR alone
        records: list[tuple[str, Any]] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return records
            except csv.Error as exc:  # a field over the csv module's limit, a stray quote
                records.append((f"line {reader.line_num}", exc))  # reported; reading goes on
                continue
            records.append((f"line {reader.line_num}", dict(row)))
    raise InvalidInput(f"the format must be csv or json, not {fmt!r}")


def import_contacts(session: Session, data: str, fmt: str, *, actor: str) -> ImportResult:
    """Add or update (by name) the contacts of an export; a bad record is reported and the
    rest taken. ``network_owner`` may be spelled ``org``."""
    result = ImportResult()
    for where, record in _records(data, fmt):
        if isinstance(record, csv.Error):
            result.problems.append(f"{where}: not CSV this import reads: {record}")
            continue
        if not isinstance(record, dict):
            result.problems.append(f"{where}: not an object")
            continue
        fields = {k.strip().lower(): v for k, v in record.items() if isinstance(k, str)}
        if "network_owner" in fields:
            fields["org"] = fields.pop("network_owner")
        name = fields.pop("name", None)
        if not isinstance(name, str) or not name.strip():
            result.problems.append(f"{where}: no name")
            continue
        changes = {k: v for k, v in fields.items() if k in _CHANGEABLE}
        if not changes.get("kind"):
            changes.pop("kind", None)
        try:
            with session.begin_nested():
                found = session.scalar(
                    select(AbuseContact.id).where(AbuseContact.name == name.strip())
                )
                if found is None:
                    for flag in ("approved", "hold_weekends"):
                        changes[flag] = _flag(changes.get(flag, False), flag)
                    seconds = changes.pop("group_seconds", None)
                    if seconds == "":
                        seconds = None
                    add_contact(session, name, actor=actor, group_seconds=seconds, **changes)
                    result.added += 1
                else:
                    if changes.get("group_seconds") in (None, ""):
                        changes.pop("group_seconds", None)
                    update_contact(session, found, actor=actor, **changes)
                    result.updated += 1
        except (InvalidInput, Conflict) as exc:
            result.problems.append(f"{where}: {exc}")
    return result


def export_contacts(session: Session, fmt: str, *, kind: str | None = None) -> str:
    """The directory as CSV (``EXPORT_FIELDS`` columns) or JSON (a list of objects)."""
    records = [c.record() for c in list_contacts(session, kind=kind)]
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
        return out.getvalue()
    raise InvalidInput(f"the format must be csv or json, not {fmt!r}")


def as_dicts(contacts: Sequence[ContactInfo]) -> list[dict[str, Any]]:
    return [{**asdict(c), "rule": c.rule} for c in contacts]

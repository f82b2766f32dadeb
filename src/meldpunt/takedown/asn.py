"""The operator's IP-to-ASN table: which network (AS number, network owner, country) an address
belongs to.

``load_table`` reads one of two shapes into ``asn_prefixes``:

- ``csv``: the ``start,end,asn,org`` ranges of the public IP-to-ASN data sets (DB-IP's
  ip-to-asn, iptoasn.com's TSV with its country column), comma or tab separated, a header
  optional (with one, columns are found by name; without, ``start,end,asn[,org[,country]]``,
  or ``start,end,asn,country,org`` when the fourth column is a country code). A range becomes
  the CIDR prefixes that cover it exactly (``ipaddress.summarize_address_range``); AS 0 (not
  routed) is skipped.
- ``pyasn``: pyasn's ``prefix<TAB>asn`` lines (``;`` comments), as ``pyasn_util_convert.py``
  writes them from routing table dumps.

Bad lines are reported by number and the rest is taken. ``replace=True`` swaps the whole table,
``replace=False`` merges (a prefix in the file replaces the same prefix in the table). Every
load writes its rows with ids above the table's highest, so that ``(count, max id)`` changes
with every load: that is the fingerprint by which each process's ``AsnTable`` (a py-radix tree,
longest-prefix match) notices a new table and builds its tree again.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import itertools
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import radix  # type: ignore[import-untyped]
from sqlalchemy import CursorResult, Engine, Result, delete, func, insert, select
from sqlalchemy.orm import Session

from meldpunt import audit, clock
from meldpunt.reports.errors import InvalidInput
from meldpunt.store.models import AsnPrefix
from meldpunt.text import text_problem

__all__ = [
    "FORMATS",
    "AsnTable",
    "LoadResult",
    "Network",
    "load_table",
    "lookup",
    "parse_table",
    "sim_table",
    "table_for",
]

FORMATS = ("csv", "pyasn")
#: Problems listed in a load's result (the count says how many there were in all).
MAX_PROBLEMS = 100
#: Rows written per statement.
_CHUNK = 5000
#: Characters of one line of a table at most (a longer line is reported and skipped).
MAX_LINE = 64 * 1024
#: How often (clock.monotonic seconds) an ``AsnTable`` asks the database for the fingerprint.
CHECK_SECONDS = 1.0
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_NO_COUNTRY = {"", "none", "zz", "--", "-"}
_HEADER_NAMES = {
    "start": ("start", "range_start", "ip_start", "start_ip", "first", "from"),
    "end": ("end", "range_end", "ip_end", "end_ip", "last", "to"),
    "asn": ("asn", "as_number", "as", "autonomous_system_number", "asnum"),
    "org": (
        "org",
        "as_org",
        "as_organisation",
        "as_organization",
        "organisation",
        "organization",
        "as_description",
        "description",
        "name",
        "owner",
    ),  # fmt: skip
    "country": ("country", "country_code", "cc", "as_country"),
}


@dataclass(frozen=True)
class Network:
    """One prefix of the table and whose it is."""

    prefix: str
    asn: int
    org: str | None = None
    country: str | None = None


@dataclass
class LoadResult:
    taken: int = 0  # prefixes written
    lines: int = 0  # data lines read
    skipped: int = 0  # lines skipped on purpose (AS 0: not routed)
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS
    bad: int = 0  # lines refused, in all
    removed: int = 0  # rows the load took out of the table
    replaced: bool = False
    total: int = 0  # rows in the table afterwards

    def problem(self, line: int, message: str) -> None:
        self.bad += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"line {line}: {message}")


def _asn(value: str) -> int:
    text = value.strip()
    if text[:2].upper() == "AS":
        text = text[2:]
    if "." in text:  # asdot notation: 1.10 is 65546
        high, _, low = text.partition(".")
        number = int(high) * 65536 + int(low)
    else:
        number = int(text)
    if not 0 <= number < 2**32:
        raise ValueError(f"AS number {value!r} is out of range")
    return number


def _country(value: str | None) -> str | None:
    if value is None or value.strip().lower() in _NO_COUNTRY:
        return None
    text = value.strip()
    if not _COUNTRY.match(text):
        raise ValueError(f"{value!r} is not a two-letter country code")
    return text.upper()


def _org(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not text or text.lower() in ("none", "not routed"):
        return None
    problem = text_problem(text)
    if problem:
        raise ValueError(f"the network owner {problem}")
    return text[:200]


def _looks_like_country(value: str) -> bool:
    return bool(_COUNTRY.match(value.strip())) or value.strip().lower() in _NO_COUNTRY


def _columns(header: list[str]) -> dict[str, int] | None:
    """Column positions by name, when ``header`` is a header row."""
    names = [h.strip().lower().replace(" ", "_").replace("-", "_") for h in header]
    found: dict[str, int] = {}
    for key, spellings in _HEADER_NAMES.items():
        for i, name in enumerate(names):
            if name in spellings:
                found[key] = i
                break
    if {"start", "end", "asn"} <= found.keys():
        return found
    return None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def _range_networks(row: list[str], columns: dict[str, int] | None) -> list[Network]:
    if columns is None:
        if len(row) < 3:
            raise ValueError(f"expected start,end,asn[,org[,country]], got {len(row)} columns")
        org_at, country_at = (3, 4) if len(row) > 3 else (None, None)
        if len(row) >= 5 and _looks_like_country(row[3]) and not _looks_like_country(row[4]):
            org_at, country_at = 4, 3  # iptoasn.com: start, end, asn, country, description
        columns = {"start": 0, "end": 1, "asn": 2}
        if org_at is not None:
            columns["org"] = org_at
        if country_at is not None and len(row) > country_at:
            columns["country"] = country_at
    if len(row) <= max(columns.values()):
        raise ValueError(f"expected at least {max(columns.values()) + 1} columns, got {len(row)}")
    try:
        start = ipaddress.ip_address(row[columns["start"]].strip())
        end = ipaddress.ip_address(row[columns["end"]].strip())
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if start.version != end.version:
        raise ValueError(f"{start} and {end} are not of one IP version")
    if int(end) < int(start):
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    asn = _asn(row[columns["asn"]])
    org = _org(row[columns["org"]]) if "org" in columns else None
    country = _country(row[columns["country"]]) if "country" in columns else None
    if int(end) - int(start) + 1 == 2**start.max_prefixlen:
        raise ValueError(f"{start}-{end} is the whole address space, no network")
    prefixes = ipaddress.summarize_address_range(start, end)
    return [Network(str(p), asn, org, country) for p in prefixes]


def _bounded(handle: TextIO) -> Iterator[str | None]:
    """The lines of ``handle``, each read at most ``MAX_LINE`` characters at a time: None for
    a longer one (skipped), so that a file without line ends never lands in memory whole."""
    while True:
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(("\n", "\r")):
            while line and not line.endswith(("\n", "\r")):
                line = handle.readline(MAX_LINE + 1)
            yield None
            continue
        yield line


def _lines(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[str | None]:
    if isinstance(source, str | os.PathLike):
        with Path(source).open(encoding="utf-8", errors="replace", newline="") as handle:
            yield from _bounded(handle)
    elif hasattr(source, "readline"):  # standard input, an open file
        yield from _bounded(cast(TextIO, source))
    else:
        yield from source


def parse_table(
    source: str | os.PathLike[str] | Iterable[str], fmt: str, result: LoadResult
) -> Iterator[Network]:
    """The networks of a table file (a path) or its lines, in ``fmt`` (``csv`` or ``pyasn``);
    bad lines go to ``result``. AS 0 (not routed) is skipped."""
    if fmt not in FORMATS:
        raise InvalidInput(f"the table format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    columns: dict[str, int] | None = None
    delimiter: str | None = None
    for number, raw in enumerate(_lines(source), start=1):
        if raw is None:
            result.lines += 1
            result.problem(number, f"the line is longer than {MAX_LINE // 1024} KiB")
            continue
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#") or (fmt == "pyasn" and line.startswith(";")):
            continue
        try:
            if fmt == "pyasn":
                words = line.split(";", 1)[0].split()
                if len(words) != 2:
                    raise ValueError(f"expected 'prefix asn', got {len(words)} fields")
                prefix = ipaddress.ip_network(words[0], strict=False)
                if prefix.prefixlen == 0:
                    raise ValueError(f"{prefix} is the whole address space, no network")
                networks = [Network(str(prefix), _asn(words[1]))]
            else:
                if delimiter is None:
                    delimiter = "\t" if "\t" in line and "," not in line else ","
                row = next(csv.reader(io.StringIO(line), delimiter=delimiter))
                if columns is None and result.lines == 0 and not _is_address(row[0]):
                    columns = _columns(row)
                    if columns is None:
                        raise ValueError(
                            "not a header (needs start, end and asn columns) nor a range"
                        )
                    continue
                networks = _range_networks(row, columns)
        except (ValueError, csv.Error, StopIteration) as exc:
            result.lines += 1
            result.problem(number, str(exc) or type(exc).__name__)
            continue
        result.lines += 1
        if networks and networks[0].asn == 0:
            result.skipped += 1
            continue
        yield from networks


def _rowcount(result: Result[Any]) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def sim_table() -> Path:
    """The small table shipped for the simulated internet (127.0.0.0/8 split among simulated
    networks; ``meldpunt attribution load --sim``)."""
    return Path(__file__).parent / "data" / "sim-asn.csv"


def _fingerprint(session: Session) -> tuple[int, int]:
    count, top = session.execute(select(func.count(AsnPrefix.id), func.max(AsnPrefix.id))).one()
    return int(count or 0), int(top or 0)


def load_table(
    session: Session,
    source: str | os.PathLike[str] | Iterable[str],
    fmt: str = "csv",
    *,
    replace: bool = False,
    actor: str = "cli",
) -> LoadResult:
    """Read a table (a path, or its lines) into ``asn_prefixes``, in the session's transaction
    (the caller commits): the whole table replaced (``replace``) or merged, a prefix of the file
    replacing the same prefix in the table. Returns what was taken and the bad lines; audited."""
    result = LoadResult(replaced=replace)
    # Plain tuples, not Networks: a million prefixes are held here at once (the last line
    # about a prefix wins), and the rows to write are made a chunk at a time.
    by_prefix: dict[str, tuple[int, str | None, str | None]] = {}
    for network in parse_table(source, fmt, result):
        by_prefix[network.prefix] = (network.asn, network.org, network.country)
    dialect = session.connection().dialect.name
    if dialect == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(0x61736E)))  # loads take turns
    else:
        session.connection().exec_driver_sql("UPDATE asn_prefixes SET id = id WHERE 0")
    _count, top = _fingerprint(session)
    if replace:
        result.removed = _rowcount(session.execute(delete(AsnPrefix)))
    else:
        prefixes = list(by_prefix)
        for i in range(0, len(prefixes), _CHUNK):
            chunk = prefixes[i : i + _CHUNK]
            gone = session.execute(delete(AsnPrefix).where(AsnPrefix.prefix.in_(chunk)))
            result.removed += _rowcount(gone)
    # SQLite would give a deleted highest id again; PostgreSQL's sequence never does.
    ids = itertools.count(top + 1) if dialect != "postgresql" else None
    rows: list[dict[str, Any]] = []
    for prefix, (asn, org, country) in by_prefix.items():
        row: dict[str, Any] = {"prefix": prefix, "asn": asn, "org": org, "country": country}
        if ids is not None:
            row["id"] = next(ids)
        rows.append(row)
        if len(rows) >= _CHUNK:
            session.execute(insert(AsnPrefix), rows)
            rows = []
    if rows:
        session.execute(insert(AsnPrefix), rows)
    result.taken = len(by_prefix)
    session.flush()
    result.total = _fingerprint(session)[0]
    audit.record(
        session,
        actor=actor,
        action="takedown.asn_table.loaded",
        subject=("asn_table", 0),
        details={"format": fmt, "replace": replace, "taken": result.taken,
                 "removed": result.removed, "bad": result.bad, "total": result.total},
    )  # fmt: skip
    _mark_stale(session)
    return result


# --- looking addresses up --------------------------------------------------------------------


class AsnTable:
    """The table as a py-radix tree (longest-prefix match), built again when the table's
    fingerprint (row count and highest id) changes; checked at most every ``CHECK_SECONDS``.
    Thread-safe: lookups read the current tree, a rebuild swaps in a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tree = radix.Radix()
        self._fingerprint: tuple[int, int] | None = None
        self._checked_at: float | None = None
        self.stale = False

    def refresh(self, session: Session) -> AsnTable:
        """Build the tree again if the table changed (at most one fingerprint read every
        ``CHECK_SECONDS``, unless this process loaded a table since); returns self."""
        now = clock.monotonic()
        if (
            not self.stale
            and self._checked_at is not None
            and now - self._checked_at < CHECK_SECONDS
        ):
            return self
        with self._lock:
            self.stale = False
            fingerprint = _fingerprint(session)
            self._checked_at = now
            if fingerprint != self._fingerprint:
                tree = radix.Radix()
                query = select(AsnPrefix.prefix, AsnPrefix.asn, AsnPrefix.org, AsnPrefix.country)
                for prefix, asn, org, country in session.execute(query):
                    node = tree.add(prefix)
                    node.data["network"] = Network(prefix, int(asn), org, country)
                self._tree, self._fingerprint = tree, fingerprint
        return self

    def lookup(self, address: str) -> Network | None:
        """The most specific network that holds ``address`` (IPv4, IPv6, an IPv4-mapped IPv6
        address as its IPv4 address), or None."""
        try:
            ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        node = self._tree.search_best(str(ip))
        return None if node is None else node.data.get("network")

    def __len__(self) -> int:
        return len(self._tree.nodes())


_tables: dict[str, AsnTable] = {}
_tables_lock = threading.Lock()


def _key(session: Session) -> str:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return str(engine.url)


def table_for(session: Session) -> AsnTable:
    """This process's table of the session's database, current (see ``AsnTable.refresh``)."""
    key = _key(session)
    with _tables_lock:
        table = _tables.get(key)
        if table is None:
            table = _tables[key] = AsnTable()
    return table.refresh(session)


def _mark_stale(session: Session) -> None:
    with _tables_lock:
        table = _tables.get(_key(session))
    if table is not None:
        table.stale = True


def lookup(session: Session, address: str) -> Network | None:
    """The network of ``address`` in the session's table (longest prefix)."""
    return table_for(session).lookup(address)

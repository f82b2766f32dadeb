"""The monitor's tables computed a second, independent way: the raw rows read out of the
database into DuckDB, then nothing but DuckDB SQL (``quantile_cont`` for the median and p90).
``compare`` lists every difference from the stored figures; ``meldpunt monitor verify`` and the
tests use it, the benchmark times it against ``figures.rebuild``.

The tables are dictionaries ``{(period_kind, period, key): {figure: value}}`` for ``hosters``
and ``platforms``, the same shape ``stored_tables`` reads from ``monitor_hosters`` and
``monitor_platforms``.
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meldpunt import clock
from meldpunt.config import get_settings
from meldpunt.store.models import (
    CheckCount,
    Hit,
    MonitorHoster,
    MonitorPlatform,
    Order,
    Organisation,
    Penalty,
    UrlItem,
)

from .figures import HOSTER_FIGURES, PLATFORM_FIGURES
from .vocabulary import PERIODS

__all__ = [
    "RawRows", "Tables", "compare", "compute", "dump_rows", "load", "read_rows", "reference_tables",
    "stored_tables",
]  # fmt: skip

Group = tuple[str, str, str]  # (period_kind, period, key)
Tables = dict[str, dict[Group, dict[str, Any]]]
#: Column name -> numpy array, per raw table.
RawRows = dict[str, dict[str, np.ndarray]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_BATCH = 100_000

_ITEM_COLUMNS = {
    "state": UrlItem.state, "grade": UrlItem.grade, "created_us": UrlItem.created_at,
    "asn": UrlItem.asn, "network_owner": UrlItem.network_owner,
    "first_us": UrlItem.first_notice_at, "notice_asn": UrlItem.notice_asn,
    "notice_owner": UrlItem.notice_owner, "notice_country": UrlItem.notice_country,
    "gone_us": UrlItem.gone_at, "offline_us": UrlItem.offline_at,
    "renotices": UrlItem.renotices, "escalated_us": UrlItem.escalated_at,
}  # fmt: skip
_ORDER_COLUMNS = {"issued_us": Order.issued_at, "asn": Order.asn,
                  "network_owner": Order.network_owner}  # fmt: skip
_PENALTY_COLUMNS = {
    "forfeited_us": Penalty.forfeited_at, "asn": Penalty.asn,
    "network_owner": Penalty.network_owner, "amount_cents": Penalty.amount_cents,
}  # fmt: skip
_HIT_COLUMNS = {"org_id": Hit.org_id, "at_us": Hit.at, "outcome": Hit.outcome}
_COUNT_COLUMNS = {"org_id": CheckCount.org_id, "day": CheckCount.day,
                  "checks": CheckCount.checks, "items": CheckCount.items}  # fmt: skip
_ORG_COLUMNS = {"id": Organisation.id, "name": Organisation.name, "kind": Organisation.kind}

_TABLES: dict[str, dict[str, Any]] = {
    "url_items": _ITEM_COLUMNS, "orders": _ORDER_COLUMNS, "penalties": _PENALTY_COLUMNS,
    "hits": _HIT_COLUMNS, "check_counts": _COUNT_COLUMNS, "organisations": _ORG_COLUMNS,
}  # fmt: skip

#: Text columns; every other column is a number (float64, NaN for NULL: exact for integers
#: below 2**53, which microseconds since 1970, AS numbers and cents are).
_TEXT = {"state", "grade", "network_owner", "notice_owner", "notice_country", "outcome", "day",
         "name", "kind"}  # fmt: skip


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        return float((value - _EPOCH) // _US)
    return float(value)


def read_rows(session: Session) -> RawRows:
    """The raw rows the monitor's tables come from, as columns in memory (small databases and
    tests; ``reference_tables`` on a session streams them through files instead)."""
    raw: RawRows = {}
    for table, columns in _TABLES.items():
        names = list(columns)
        values: list[list[Any]] = [[] for _ in names]
        result = session.execute(select(*columns.values())).yield_per(_BATCH)
        for row in result:
            for index, value in enumerate(row):
                values[index].append(value)
        raw[table] = {
            name: (np.array(column, dtype=object) if name in _TEXT
                   else np.array([_number(v) for v in column], dtype=np.float64))
            for name, column in zip(names, values, strict=True)
        }  # fmt: skip
    return raw


def dump_rows(session: Session, directory: Path) -> dict[str, Path]:
    """The raw rows written to one CSV file per table under ``directory`` (times as
    microseconds since 1970): by COPY on PostgreSQL, row by row on SQLite. Memory stays
    bounded however many rows there are."""
    files = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for table, columns in _TABLES.items():
        path = directory / f"{table}.csv"
        if postgres:
            _copy_out(session, table, columns, path)
        else:
            with path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(list(columns))
                result = session.execute(select(*columns.values())).yield_per(_BATCH)
                for row in result:
                    writer.writerow(["" if v is None else _plain(v) for v in row])
        files[table] = path
    return files


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value - _EPOCH) // _US
    return value


def _copy_out(session: Session, table: str, columns: dict[str, Any], path: Path) -> None:
    parts = []
    for name, column in columns.items():
        sql = f'"{column.key}"'
        if name.endswith("_us"):
            sql = f"(EXTRACT(EPOCH FROM {sql}) * 1000000)::bigint"
        parts.append(f'{sql} AS "{name}"')
    query = f"COPY (SELECT {', '.join(parts)} FROM {table}) TO STDOUT WITH (FORMAT csv, HEADER)"
    connection = session.connection().connection.driver_connection
    assert connection is not None
    with path.open("wb") as out, connection.cursor() as cursor, cursor.copy(query) as copy:
        for chunk in copy:
            out.write(chunk)


def _load_csv(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    names = list(_TABLES[table])
    types = ", ".join(f"'{n}': '{'VARCHAR' if n in _TEXT else 'DOUBLE'}'" for n in names)
    con.execute(
        f"CREATE TABLE {table} AS SELECT * FROM read_csv(?, header = true, "
        f"columns = {{{types}}}, allow_quoted_nulls = false)",
        [str(path)],
    )


def _period(kind: str, micros: str) -> str:
    ts = f"make_timestamp(CAST({micros} AS BIGINT))"
    if kind == "month":
        return f"strftime({ts}, '%Y-%m')"
    if kind == "year":
        return f"strftime({ts}, '%Y')"
    return f"(strftime({ts}, '%Y') || '-Q' || CAST(quarter({ts}) AS VARCHAR))"


def _key(asn: str, owner: str) -> str:
    return f"(coalesce(CAST(CAST({asn} AS BIGINT) AS VARCHAR), '') || '|' || coalesce({owner}, ''))"


def _hoster_sql(kind: str, total: bool) -> str:
    key_n = "''" if total else _key("notice_asn", "notice_owner")
    key_r = "''" if total else _key("asn", "network_owner")
    attributed = "" if total else "AND (asn IS NOT NULL OR network_owner IS NOT NULL)"
    day = 86_400_000_000
    return f"""
    WITH items AS (
        SELECT *, CAST(first_us AS BIGINT) AS f,
               CAST(coalesce(gone_us, offline_us) AS BIGINT) AS g
        FROM url_items
    ), notified AS (
        SELECT {_period(kind, "f")} AS period, {key_n} AS key,
               count(*) AS notified,
               count(*) FILTER (WHERE state = 'offline' AND g IS NOT NULL AND g - f <= {day})
                   AS offline_24h,
               count(*) FILTER (WHERE state = 'offline' AND g IS NOT NULL AND g - f > {day}
                                AND g - f <= {2 * day}) AS offline_48h,
               count(*) FILTER (WHERE state = 'offline' AND g IS NOT NULL AND g - f > {2 * day})
                   AS offline_later,
               count(*) FILTER (WHERE NOT (state = 'offline' AND g IS NOT NULL)) AS online,
               quantile_cont(CASE WHEN state = 'offline' AND g IS NOT NULL
                                  THEN greatest(0.0, (g - f) / 3600000000.0) END, 0.5)
                   AS median_hours,
               quantile_cont(CASE WHEN state = 'offline' AND g IS NOT NULL
                                  THEN greatest(0.0, (g - f) / 3600000000.0) END, 0.9)
                   AS p90_hours,
               CAST(sum(renotices) AS BIGINT) AS renotices,
               count(escalated_us) AS escalations,
               max(notice_country) AS country
        FROM items WHERE f IS NOT NULL GROUP BY ALL
    ), reported AS (
        SELECT {_period(kind, "created_us")} AS period, {key_r} AS key, count(*) AS reported
        FROM url_items WHERE grade = 'illegal' {attributed} GROUP BY ALL
    ), ordered AS (
        SELECT {_period(kind, "issued_us")} AS period, {key_r} AS key, count(*) AS orders
        FROM orders GROUP BY ALL
    ), forfeited AS (
        SELECT {_period(kind, "forfeited_us")} AS period, {key_r} AS key,
               CAST(sum(amount_cents) AS BIGINT) AS penalties_cents
        FROM penalties GROUP BY ALL
    ), groups AS (
        SELECT period, key FROM notified UNION SELECT period, key FROM reported
        UNION SELECT period, key FROM ordered UNION SELECT period, key FROM forfeited
    )
    SELECT g.period, g.key,
           coalesce(r.reported, 0), coalesce(n.notified, 0), coalesce(n.offline_24h, 0),
           coalesce(n.offline_48h, 0), coalesce(n.offline_later, 0), coalesce(n.online, 0),
           n.median_hours, n.p90_hours, coalesce(n.renotices, 0), coalesce(n.escalations, 0),
           coalesce(o.orders, 0), coalesce(p.penalties_cents, 0), n.country
    FROM groups g
    LEFT JOIN notified n USING (period, key) LEFT JOIN reported r USING (period, key)
    LEFT JOIN ordered o USING (period, key) LEFT JOIN forfeited p USING (period, key)
    """


def _platform_sql(kind: str, cutoff_us: int) -> str:
    hit_period = _period(kind, "at_us")
    if kind == "month":
        day_period = "substr(day, 1, 7)"
    elif kind == "year":
        day_period = "substr(day, 1, 4)"
    else:
        day_period = "(substr(day, 1, 4) || '-Q' || CAST((CAST(substr(day, 6, 2) AS INTEGER) + 2) // 3 AS VARCHAR))"  # noqa: E501
    return f"""
    WITH platforms AS (SELECT CAST(id AS BIGINT) AS org FROM organisations WHERE kind = 'platform'),
    h AS (
        SELECT {hit_period} AS period, CAST(org_id AS BIGINT) AS org, count(*) AS hits,
               count(*) FILTER (WHERE outcome = 'blocked') AS blocked,
               count(*) FILTER (WHERE outcome = 'removed') AS removed,
               count(*) FILTER (WHERE outcome = 'reported') AS reported,
               count(*) FILTER (WHERE outcome = 'false_positive') AS false_positive,
               count(*) FILTER (WHERE outcome = 'other') AS other,
               count(*) FILTER (WHERE outcome IS NULL) AS pending,
               count(*) FILTER (WHERE outcome IS NULL AND at_us < {cutoff_us}) AS overdue
        FROM hits WHERE CAST(org_id AS BIGINT) IN (SELECT org FROM platforms) GROUP BY ALL
    ), c AS (
        SELECT {day_period} AS period, CAST(org_id AS BIGINT) AS org,
               CAST(sum(checks) AS BIGINT) AS checks, CAST(sum(items) AS BIGINT) AS items
        FROM check_counts WHERE CAST(org_id AS BIGINT) IN (SELECT org FROM platforms) GROUP BY ALL
    ), per_org AS (
        SELECT period, org, coalesce(c.checks, 0) AS checks, coalesce(c.items, 0) AS items,
               coalesce(h.hits, 0) AS hits, coalesce(blocked, 0) AS blocked,
               coalesce(removed, 0) AS removed, coalesce(reported, 0) AS reported,
               coalesce(false_positive, 0) AS false_positive, coalesce(other, 0) AS other,
               coalesce(pending, 0) AS pending, coalesce(overdue, 0) AS overdue
        FROM h FULL OUTER JOIN c USING (period, org)
    )
    SELECT period, CAST(org AS VARCHAR) AS key, checks, items, hits, blocked, removed, reported,
           false_positive, other, pending, overdue FROM per_org
    UNION ALL
    SELECT period, '' AS key, sum(checks), sum(items), sum(hits), sum(blocked), sum(removed),
           sum(reported), sum(false_positive), sum(other), sum(pending), sum(overdue)
    FROM per_org GROUP BY period
    """


Sessions = Callable[[], AbstractContextManager[Session]]


def load(con: duckdb.DuckDBPyConnection, source: Session | Sessions | RawRows) -> None:
    """Put the raw rows into DuckDB's tables (``url_items``, ``orders``, ...): from ``source``,
    a session, a callable that gives one (a sessionmaker), or rows ``read_rows`` read."""
    if isinstance(source, dict):
        for table, columns in source.items():
            con.register(f"raw_{table}", columns)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM raw_{table}")
        return
    with tempfile.TemporaryDirectory(prefix="meldpunt-monitor-") as scratch:
        if isinstance(source, Session):
            files = dump_rows(source, Path(scratch))
        else:
            with source() as session:
                files = dump_rows(session, Path(scratch))
        for table, path in files.items():
            _load_csv(con, table, path)


def compute(con: duckdb.DuckDBPyConnection, *, now: datetime | None = None) -> Tables:
    """The monitor's tables from the raw rows ``load`` put into ``con``, in DuckDB SQL alone;
    ``now`` decides which hits without an outcome are overdue (default: the clock)."""
    moment = now or clock.now()
    cutoff = moment - timedelta(hours=get_settings().hit_outcome_due_hours)
    cutoff_us = (cutoff - _EPOCH) // _US
    tables: Tables = {"hosters": {}, "platforms": {}}
    for kind in PERIODS:
        for total in (False, True):
            for row in con.execute(_hoster_sql(kind, total)).fetchall():
                values = dict(zip(HOSTER_FIGURES, row[2:14], strict=True))
                if not (values["notified"] or values["reported"] or values["orders"]
                        or values["penalties_cents"]):  # fmt: skip
                    continue
                values["country"] = row[14]
                tables["hosters"][(kind, row[0], row[1])] = values
        for row in con.execute(_platform_sql(kind, cutoff_us)).fetchall():
            values = dict(zip(PLATFORM_FIGURES, (int(v) for v in row[2:]), strict=True))
            tables["platforms"][(kind, row[0], row[1])] = values
    return tables


def reference_tables(
    source: Session | Sessions | RawRows, *, now: datetime | None = None
) -> Tables:
    """The monitor's tables from the raw rows, in DuckDB (``load``, then ``compute``)."""
    con = duckdb.connect()
    try:
        load(con, source)
        return compute(con, now=now)
    finally:
        con.close()


def stored_tables(session: Session) -> Tables:
    """The figures as the monitor keeps them, in the shape of ``reference_tables``."""
    tables: Tables = {"hosters": {}, "platforms": {}}
    for row in session.scalars(select(MonitorHoster)):
        values = {name: getattr(row, name) for name in HOSTER_FIGURES}
        values["country"] = row.country
        tables["hosters"][(row.period_kind, row.period, row.key)] = values
    for platform in session.scalars(select(MonitorPlatform)):
        tables["platforms"][(platform.period_kind, platform.period, platform.key)] = {
            name: getattr(platform, name) for name in PLATFORM_FIGURES
        }
    return tables


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=1e-9)
    return bool(a == b)


def compare(expected: Tables, actual: Tables, *, limit: int = 100) -> list[str]:
    """Every difference between two sets of tables (floats equal within 1e-9), at most
    ``limit`` of them, as lines a person can read."""
    problems: list[str] = []
    for table in sorted(set(expected) | set(actual)):
        mine, theirs = expected.get(table, {}), actual.get(table, {})
        for group in sorted(set(mine) | set(theirs)):
            if len(problems) >= limit:
                return problems
            where = f"{table} {'/'.join(group)}"
            if group not in theirs:
                problems.append(f"{where}: missing (expected {_short(mine[group])})")
                continue
            if group not in mine:
                problems.append(f"{where}: not expected (found {_short(theirs[group])})")
                continue
            for name in mine[group]:
                a, b = mine[group][name], theirs[group].get(name)
                if not _same(a, b):
                    problems.append(f"{where}: {name} expected {a!r}, found {b!r}")
    return problems


def _short(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v not in (0, None))


def groups_of(tables: Tables, table: str, kinds: Iterable[str] | None = None) -> Sequence[Group]:
    """The groups of one table (of these period kinds), sorted."""
    wanted = set(kinds or PERIODS)
    return sorted(group for group in tables[table] if group[0] in wanted)

"""A national-scale notice-and-takedown history for the monitor's benchmark, written straight
into meldpunt's tables: notified URLs over hosters and years, with how fast each hoster removed
them, re-notices, escalations, orders and penalty payments.

Hosters' volumes follow a Zipf law (most volume at a few hosters, as in the Dutch figures), each
hoster has a removal speed (a log-normal time to removal with its own median) and a share it
never removes; the history's years get slower or faster as a whole. Rows are made in NumPy in
chunks and loaded by ``COPY`` on PostgreSQL (the table's secondary indexes dropped during the load
and built after it, as a bulk load does) or ``executemany`` on SQLite.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

EPOCH = np.datetime64("1970-01-01T00:00:00", "s")

#: The columns written to ``url_items`` (the rest take their defaults or stay NULL).
ITEM_COLUMNS = (
    "id", "url", "url_key", "open_key", "host", "kind", "state", "created_at", "updated_at",
    "attempts", "media", "grade", "category", "graded_by", "ip", "asn", "network_owner", "country",
    "first_notice_at", "notice_asn", "notice_owner", "notice_country", "last_notice_at",
    "renotices", "misses", "escalated_at", "gone_at", "offline_at",
)  # fmt: skip
ORDER_COLUMNS = (
    "id", "ref", "case_id", "asn", "network_owner", "status", "legal_basis", "reasons",
    "issued_by", "issued_at", "hours", "deadline_at", "updated_at", "message_id",
    "send_attempts", "penalty_total_cents", "public",
)  # fmt: skip
PENALTY_COLUMNS = (
    "id", "order_id", "seq", "due_at", "forfeited_at", "amount_cents", "asn", "network_owner",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    urls: int
    hosters: int
    years: int
    start: datetime
    seed: int = 1
    zipf: float = 1.1
    #: Each year's speed: a factor on every hoster's median time to removal.
    year_factor: tuple[float, ...] = (1.0, 0.8, 2.5, 1.2, 1.0)
    online_share: float = 0.02  # of URLs never removed (at "ignoring" hosters mostly)
    escalated_share: float = 0.03
    orders: int = 5_000
    penalties_per_order: int = 4

    @property
    def seconds(self) -> int:
        return int(self.years * 365.25 * 86400)


class History:
    """The generated history, made chunk by chunk from one seed."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        rng = np.random.default_rng(shape.seed)
        weights = 1.0 / np.arange(1, shape.hosters + 1) ** shape.zipf
        self.weights = weights / weights.sum()
        self.asn = 200_000 + np.arange(shape.hosters, dtype=np.int64)
        self.owner = np.array([f"Hoster {i:05d} B.V." for i in range(shape.hosters)], dtype=object)
        # each hoster's median hours to removal (most within a day, some slow, a few ignore)
        self.median_h = np.exp(rng.normal(np.log(6.0), 1.1, shape.hosters))
        self.never = np.where(rng.random(shape.hosters) < 0.05, 0.4, shape.online_share / 2)
        self.start = np.datetime64(shape.start.replace(tzinfo=None), "s")

    def chunks(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        shape = self.shape
        for first in range(0, shape.urls, size):
            n = min(size, shape.urls - first)
            rng = np.random.default_rng([shape.seed, first])
            ids = np.arange(first + 1, first + n + 1, dtype=np.int64)
            hoster = rng.choice(shape.hosters, size=n, p=self.weights)
            notice = rng.integers(0, shape.seconds, n)
            year = np.minimum(notice // int(365.25 * 86400), len(shape.year_factor) - 1)
            factor = np.asarray(shape.year_factor)[year]
            hours = np.exp(rng.normal(np.log(self.median_h[hoster] * factor), 0.9))
            online = rng.random(n) < self.never[hoster]
            gone = notice + (hours * 3600).astype(np.int64)
            end = shape.seconds + 3600
            online |= gone >= end  # not gone by the end of the history
            created = np.maximum(notice - rng.integers(60, 3600, n), 0)
            renotices = np.where(online, (end - notice) // 86400, (gone - notice) // 86400)
            escalated = (renotices >= 1) & (rng.random(n) < shape.escalated_share * 10)
            yield {
                "id": ids,
                "hoster": hoster,
                "created": created,
                "notice": notice,
                "gone": np.where(online, -1, gone),
                "offline": np.where(online, -1, gone + 360),  # three misses, 3 minutes apart
                "renotices": np.minimum(renotices, 60),
                "escalated": np.where(escalated, notice + 86400, -1),
            }

    def moment(self, seconds: np.ndarray) -> np.ndarray:
        """Seconds since the start as ISO text ('' where negative: NULL)."""
        text = np.datetime_as_string(self.start + seconds.astype("timedelta64[s]"), unit="s")
        return np.where(seconds >= 0, np.char.add(text, "+00:00"), "")

    def item_rows(self, chunk: dict[str, np.ndarray]) -> Iterator[tuple[Any, ...]]:
        h = chunk["hoster"]
        asn, owner = self.asn[h], self.owner[h]
        created, notice = self.moment(chunk["created"]), self.moment(chunk["notice"])
        gone, offline = self.moment(chunk["gone"]), self.moment(chunk["offline"])
        escalated = self.moment(chunk["escalated"])
        online = chunk["gone"] < 0
        for i, item_id in enumerate(chunk["id"].tolist()):
            host = f"h{h[i]}.example"
            key = f"{item_id:064x}"
            state = ("escalated" if escalated[i] else "noticed") if online[i] else "offline"
            updated = offline[i] or notice[i]
            yield (
                item_id, f"https://{host}/{item_id}.jpg", key, key if online[i] else None, host,
                "csam", state, created[i], updated, 0, "image", "illegal", "A1", "registry",
                "192.0.2.1", int(asn[i]), owner[i], "NL", notice[i], int(asn[i]), owner[i], "NL",
                notice[i], int(chunk["renotices"][i]), 0, escalated[i] or None, gone[i] or None,
                offline[i] or None,
            )  # fmt: skip

    def orders(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Orders to hosters in proportion to their volume, each with a few penalty payments."""
        shape = self.shape
        rng = np.random.default_rng([shape.seed, 7])
        hoster = rng.choice(shape.hosters, size=shape.orders, p=self.weights)
        issued = np.sort(rng.integers(86400, shape.seconds, shape.orders))
        at = self.moment(issued)
        deadline = self.moment(issued + 12 * 3600)
        orders, penalties = [], []
        penalty_id = 0
        for i in range(shape.orders):
            k = int(rng.integers(0, shape.penalties_per_order + 1))
            status = "met" if k == 0 else "late"
            orders.append((
                i + 1, f"O-{i + 1:07d}", None, int(self.asn[hoster[i]]), self.owner[hoster[i]],
                status, "the removal order power", "ignored notices", "authority", at[i], 12.0,
                deadline[i], deadline[i], f"<order-{i + 1}@bench>", 1, k * 100_000, False,
            ))  # fmt: skip
            for seq in range(1, k + 1):
                penalty_id += 1
                due = self.moment(np.asarray([issued[i] + 12 * 3600 + (seq - 1) * 86400]))[0]
                penalties.append((penalty_id, i + 1, seq, due, due, 100_000,
                                  int(self.asn[hoster[i]]), self.owner[hoster[i]]))  # fmt: skip
        return orders, penalties


def _case_rows(orders: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [
        (o[0], f"C-{o[0]:07d}", "closed", "escalation", o[3], o[4], "bench", "authority", o[9],
         o[9])
        for o in orders
    ]  # fmt: skip


CASE_COLUMNS = (
    "id", "ref", "state", "source", "asn", "network_owner", "title", "opened_by", "opened_at",
    "updated_at",
)  # fmt: skip


def _copy_text(rows: Iterator[tuple[Any, ...]]) -> str:
    out = io.StringIO()
    for row in rows:
        out.write(
            "\t".join("\\N" if v is None or v == "" else str(v).replace("\t", " ") for v in row)
        )
        out.write("\n")
    return out.getvalue()


def load(
    engine: Any, shape: Shape, *, chunk: int = 200_000, step: Callable[[int], None] | None = None
) -> History:
    """Write the history into the database behind ``engine`` (meldpunt's schema, empty)."""
    from sqlalchemy import insert

    from meldpunt.store.models import Case, Order, Penalty, UrlItem

    history = History(shape)
    orders, penalties = history.orders()
    cases = _case_rows(orders)
    orders = [(*o[:2], o[0], *o[3:]) for o in orders]  # case id = order id
    postgres = engine.dialect.name == "postgresql"
    table = UrlItem.__table__
    if postgres:
        indexes = [i for i in table.indexes]
        with engine.begin() as connection:
            for index in indexes:
                index.drop(connection)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for block in history.chunks(chunk):
                rows = history.item_rows(block)
                with cursor.copy(f"COPY url_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN") as cp:
                    cp.write(_copy_text(rows))
                raw.commit()
                if step:
                    step(len(block["id"]))
            for name, columns, data in (
                ("cases", CASE_COLUMNS, cases),
                ("orders", ORDER_COLUMNS, orders),
                ("penalties", PENALTY_COLUMNS, penalties),
            ):
                with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as cp:
                    cp.write(_copy_text(iter(data)))
            raw.commit()
            for name in ("url_items", "cases", "orders", "penalties"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as connection:
            for index in indexes:
                index.create(connection)
            connection.exec_driver_sql("ANALYZE")
        return history
    with engine.begin() as connection:
        for block in history.chunks(chunk):
            data = [dict(zip(ITEM_COLUMNS, r, strict=True)) for r in history.item_rows(block)]
            for row in data:
                for column in ("created_at", "updated_at", "first_notice_at", "last_notice_at",
                               "escalated_at", "gone_at", "offline_at"):  # fmt: skip
                    if row[column]:
                        row[column] = datetime.fromisoformat(row[column])
            connection.execute(insert(table), data)
            if step:
                step(len(block["id"]))
        for model, columns, rows in (
            (Case, CASE_COLUMNS, cases),
            (Order, ORDER_COLUMNS, orders),
            (Penalty, PENALTY_COLUMNS, penalties),
        ):
            dicts = [dict(zip(columns, r, strict=True)) for r in rows]
            for row in dicts:
                for column, value in row.items():
                    if column.endswith("_at") and isinstance(value, str):
                        row[column] = datetime.fromisoformat(value)
            if dicts:
                connection.execute(insert(model.__table__), dicts)
    return history


def default_start(years: int) -> datetime:
    return datetime(2026 - years, 1, 1, tzinfo=UTC)

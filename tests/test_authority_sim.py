"""The authority in a whole simulated scenario (the demo's story): a hoster that ignores notices
is escalated, ordered (1 hour), forfeits penalty payments and is fined, while a hoster that
removes is never ordered; on SQLite and PostgreSQL, from meldpunt's own records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meldpunt.authority import records
from meldpunt.sim.behaviour import Behaviour, BehaviourKind
from meldpunt.sim.scenario import ScenarioConfig, run_scenario
from meldpunt.store import make_sessionmaker
from meldpunt.store.models import Case, Fine, Order, Penalty

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def test_an_ignoring_hoster_is_escalated_ordered_and_fined(db_url, settings, engine, tmp_path):
    config = ScenarioConfig(
        seed=5, urls=6, days=3, start=START, abroad=0.0, page_share=0.0, police_share=0.0,
        not_illegal_share=0.0, known_share=1.0, authority=True,
        behaviours=(Behaviour(BehaviourKind.removes, delay_minutes=30),
                    Behaviour(BehaviourKind.ignores)),
    )  # fmt: skip
    result = run_scenario(config, make_sessionmaker(engine), settings, folder=tmp_path / "sim")
    summary = result.summary["authority"]
    assert summary["cases"] == 1 and summary["fines"] == 1
    assert set(summary["orders"]) == {"unmet"}  # one order per batch of escalations
    assert result.summary["mail"]["order"] == sum(summary["orders"].values())
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        order = s.scalars(select(Order).order_by(Order.id)).first()
        (case,) = s.scalars(select(Case))
        ignoring = {u["url"] for u in result.urls if u["hoster"] == "h2"}
        assert case.network_owner and order.delivered_at is not None and order.public
        # escalated a day after the first notice, ordered at once, one hour to comply
        first_notice = min(
            datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
            for u in result.urls if u["hoster"] == "h2"
            for e in u["events"] if e["event"] == "notice"
        )  # fmt: skip
        assert order.issued_at - first_notice <= timedelta(hours=24, minutes=10)
        assert order.deadline_at == order.issued_at + timedelta(hours=1)
        penalties = list(
            s.scalars(select(Penalty).where(Penalty.order_id == order.id).order_by(Penalty.seq))
        )
        assert [p.due_at for p in penalties] == [order.deadline_at + timedelta(hours=24 * k)
                                                 for k in range(len(penalties))]  # fmt: skip
        assert len(penalties) >= 2 and all(p.asn == order.asn for p in penalties)
        (fine,) = s.scalars(select(Fine))
        assert fine.case_id == case.id and fine.public and fine.amount_cents == 2_500_000
        assert {u["state"] for u in result.urls if u["url"] in ignoring} == {"escalated"}
        removed = {u["state"] for u in result.urls if u["hoster"] == "h1"}
        assert removed == {"offline"}
        # the duty-of-care record of the ignoring hoster tells the same story
        record = records.hoster_record(s, order.asn)
        t = record.totals
        assert t.notified == len(ignoring) == t.ignored and t.offline == 0
        assert t.notices > t.notified // 3 and t.renotices >= t.notified  # re-noticed daily
        assert t.fines == 1 and t.penalties == s.query(Penalty).count()
        assert [e.kind for e in record.events][0] == "order_issued"

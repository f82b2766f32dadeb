"""The worker's step: pull the partners' feeds that are due (every ``exchange_pull_seconds``)."""

from __future__ import annotations

from datetime import timedelta

from meldpunt.exchange.follow import partner_policy, pull_due
from meldpunt.reports.context import HotlineContext

__all__ = ["run_exchange"]


def run_exchange(context: HotlineContext, limit: int) -> int:
    """Pull up to ``limit`` due follows; returns how many changes were applied."""
    every = timedelta(seconds=context.settings.exchange_pull_seconds)
    policy = partner_policy(context.fetch_policy)
    return pull_due(context.sessions, policy, limit=limit, every=every)

"""The authority's worker step: mail the orders due for delivery, then evaluate the orders whose
moment has come (``compliance``). It runs after the hotline's re-checks in each round."""

from __future__ import annotations

from meldpunt.reports.context import HotlineContext

from .compliance import run_compliance
from .delivery import send_due_orders

__all__ = ["run_authority"]


def run_authority(context: HotlineContext, limit: int) -> int:
    return send_due_orders(context, limit) + run_compliance(context, limit)

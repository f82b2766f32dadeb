"""The follow-up times of hits, from the settings (read on each call, so tests can change them)."""

from __future__ import annotations

from datetime import timedelta

from meldpunt.config import get_settings

__all__ = ["outcome_due", "recheck_after"]


def outcome_due() -> timedelta:
    """How long a hit may go without an outcome before it is overdue."""
    return timedelta(hours=get_settings().hit_outcome_due_hours)


def recheck_after() -> timedelta:
    """How long after a hit its public URL is re-fetched."""
    return timedelta(hours=get_settings().hit_recheck_after_hours)

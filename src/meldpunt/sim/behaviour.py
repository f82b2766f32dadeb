"""What each simulated hoster does when it gets a notice, drawn from a seed.

- ``removes``: removes the noticed URLs ``delay`` minutes later.
- ``removes_some``: removes a share (``fraction``) of them, the same ones every time.
- ``ignores``: nothing.
- ``moves``: ``delay`` minutes later its host name points at another hoster (``to``), which
  serves the same content from then on and answers notices by its own behaviour.
- ``down``: ``delay`` minutes later stops listening (connections refused) for ``duration``
  minutes, once; otherwise ignores.
- ``returns``: removes them ``delay`` minutes later and puts them back ``duration`` minutes
  after that (once per URL; a later notice removes them for good).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Behaviour", "BehaviourKind", "draw_behaviours"]


class BehaviourKind(StrEnum):
    removes = "removes"
    removes_some = "removes_some"
    ignores = "ignores"
    moves = "moves"
    down = "down"
    returns = "returns"


#: How often each behaviour is drawn (a realistic mix: most hosters act on notices).
WEIGHTS: dict[BehaviourKind, float] = {
    BehaviourKind.removes: 0.45,
    BehaviourKind.removes_some: 0.10,
    BehaviourKind.ignores: 0.12,
    BehaviourKind.moves: 0.10,
    BehaviourKind.down: 0.08,
    BehaviourKind.returns: 0.15,
}


@dataclass(frozen=True)
class Behaviour:
    kind: BehaviourKind
    delay_minutes: float = 0.0  # reaction time after a notice
    fraction: float = 1.0  # removes_some: the share removed
    duration_minutes: float = 0.0  # down: how long; returns: how long gone before coming back
    to: int | None = None  # moves: the hoster that serves the content afterwards

    def describe(self) -> dict[str, Any]:
        """The behaviour as plain values, without the ones its kind does not use."""
        out = asdict(self)
        out["kind"] = str(self.kind)
        if self.kind is not BehaviourKind.removes_some:
            out.pop("fraction")
        if self.kind not in (BehaviourKind.down, BehaviourKind.returns):
            out.pop("duration_minutes")
        if self.kind is not BehaviourKind.moves:
            out.pop("to")
        if self.kind is BehaviourKind.ignores:
            out.pop("delay_minutes")
        return out


def draw_behaviours(
    seed: int, count: int, *, mix: dict[BehaviourKind, float] | None = None
) -> list[Behaviour]:
    """Behaviours of hosters 1..count (index 0 of the list is hoster 1), drawn from ``seed``.
    A hoster that moves content moves it to one that removes, so that every move ends."""
    rng = random.Random(f"behaviours:{seed}")
    weights = mix or WEIGHTS
    kinds = list(weights)
    drawn = rng.choices(kinds, weights=[weights[k] for k in kinds], k=count)
    removers = [i + 1 for i, kind in enumerate(drawn) if kind is BehaviourKind.removes]
    out: list[Behaviour] = []
    for index, kind in enumerate(drawn, start=1):
        delay = round(rng.uniform(10, 240))
        if kind is BehaviourKind.removes:
            out.append(Behaviour(kind, delay_minutes=delay))
        elif kind is BehaviourKind.removes_some:
            out.append(
                Behaviour(kind, delay_minutes=delay, fraction=round(rng.uniform(0.3, 0.7), 2))
            )
        elif kind is BehaviourKind.moves:
            targets = [r for r in removers if r != index]
            if not targets:  # nobody to move to: it removes instead
                out.append(Behaviour(BehaviourKind.removes, delay_minutes=delay))
                continue
            out.append(Behaviour(kind, delay_minutes=delay, to=rng.choice(targets)))
        elif kind is BehaviourKind.down:
            duration = round(rng.uniform(60, 8 * 60))
            out.append(Behaviour(kind, delay_minutes=delay, duration_minutes=duration))
        elif kind is BehaviourKind.returns:
            duration = round(rng.uniform(4 * 60, 30 * 60))
            out.append(Behaviour(kind, delay_minutes=delay, duration_minutes=duration))
        else:
            out.append(Behaviour(kind))
    return out

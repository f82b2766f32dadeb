"""Benign demo data for `make run`: a set made from the bundled sample photos, a platform, a key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meldpunt import checks, registry
from meldpunt.signals import FileSignals
from meldpunt.store import init_db, session_scope

DEMO_SET = "demo-benign-samples"
DEMO_ORG = "demo-platform"
DEMO_HOTLINE = "demo-hotline"


@dataclass(frozen=True)
class Demo:
    set_name: str
    org_name: str
    key: str
    admin_key: str
    example_pdq: str


def load_demo(samples: Sequence[FileSignals]) -> Demo:
    """Create (or reuse) the demo set and organisation; a new demo key each time."""
    init_db()
    with session_scope() as session:
        names = {s.name for s in registry.list_sets(session)}
        if DEMO_SET not in names:
            registry.create_set(
                session,
                DEMO_SET,
                description="Benign sample photos (demo)",
                default_category="csam_baseline",
                actor="demo",
            )
        for sample in samples:
            if sample.pdq is None or sample.digests is None:
                continue
            registry.add_item(
                session,
                DEMO_SET,
                [("pdq", sample.pdq.hash), ("md5", sample.digests.md5)],
                reference=sample.path.rsplit("/", 1)[-1],
                actor="demo",
            )
        orgs = {o.name for o in checks.list_orgs(session)}
        if DEMO_ORG not in orgs:
            checks.create_org(session, DEMO_ORG, "platform", actor="demo")
        if DEMO_HOTLINE not in orgs:
            checks.create_org(session, DEMO_HOTLINE, "hotline", actor="demo")
        _, key = checks.create_key(session, DEMO_ORG, "platform", label="demo", actor="demo")
        _, admin = checks.create_key(session, DEMO_HOTLINE, "admin", label="demo", actor="demo")
    first = next(s for s in samples if s.pdq is not None)
    assert first.pdq is not None
    return Demo(DEMO_SET, DEMO_ORG, key, admin, first.pdq.hash)

"""Hashing on a Ray cluster: a local cluster on loopback with two worker processes gives the
same classes as one process; the cluster is torn down afterwards."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from meldpunt.triage import RayHasher, plan_from, rule_from, run_case
from meldpunt.triage.cases import get_case, iter_files
from triage_support import EXPECTED, build, seed_registry

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_a_local_ray_cluster_of_two_workers_gives_the_same_result(settings, engine, session,
                                                                   tmp_path):  # fmt: skip
    collection = build(tmp_path)
    seed_registry(session, collection)
    hasher = RayHasher("local", workers=2)
    try:
        assert hasher.workers == 2
        report = run_case("on-ray", [collection.root], plan=plan_from(settings),
                          rule=rule_from(settings), hasher=hasher, bind=sessionmaker(engine),
                          batch_files=3)  # fmt: skip
    finally:
        hasher.close()
    assert not ray.is_initialized()
    assert report.hashed == 20
    rows = iter_files(session, get_case(session, "on-ray").id)
    assert {row.path: row.file_class for row in rows} == EXPECTED

"""Property-based tests of the API from its own OpenAPI document (schemathesis): whatever a
client sends, the service answers without a server error, and every error is JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from service import World, running


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    database = Path(tmp_path_factory.mktemp("schemathesis")) / "meldpunt.db"
    with running(f"sqlite:///{database}", loopback=True, rate_per_second=0) as world:
        yield world


def test_no_server_errors_and_json_errors(live: World):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Revoking keys at random would only lock the test out of the rest of the API.
    operations = [
        op for op in operations if (op.method.upper(), op.path) != ("DELETE", "/v1/keys/{key_id}")
    ]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def exercise(case) -> None:
            for role in ("platform", "analyst", "admin", None):
                headers = {"Authorization": f"Bearer {live.keys[role]}"} if role else {}
                response = case.call(base_url=live.url, headers=headers)
                where = (role, case.method, case.path, response.text[:300])
                assert response.status_code < 500, where
                if response.status_code >= 400 and response.status_code != 499:
                    kind = response.headers.get("content-type") or [""]
                    kind = kind[0] if isinstance(kind, list) else kind
                    assert kind.startswith("application/json"), where
                    assert set(response.json()["error"]) >= {"code", "message"}, where

        exercise()

"""The roles matrix: every route, every role. Without the right key: 401 or 403, never data."""

from __future__ import annotations

import pytest

from service import running

OPEN = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/v1/public/decisions"),  # the authority's published decisions
    # the public monitor (tests/test_monitor_faces.py)
    ("GET", "/v1/monitor/hosters"),
    ("GET", "/v1/monitor/platforms"),
    ("GET", "/v1/monitor/periods"),
    ("GET", "/v1/exchange/key"),  # the instance's public key
    # self-hashing: the case number and PIN are the keys (tests/test_selfhash.py)
    ("POST", "/v1/protect/cases"),
    ("POST", "/v1/protect/cases/{number}"),
    ("POST", "/v1/protect/cases/{number}/pictures"),
    ("POST", "/v1/protect/cases/{number}/withdraw"),
}

# (method, path): the roles that may use it
ROUTES = {
    ("POST", "/v1/check"): {"platform"},
    ("GET", "/m/lookup"): {"platform"},
    ("POST", "/m/lookup"): {"platform"},
    ("GET", "/v1/hits"): {"platform", "admin"},
    ("GET", "/v1/hits/{hit_id}"): {"platform"},
    ("POST", "/v1/hits/{hit_id}/outcome"): {"platform"},
    ("GET", "/v1/stats"): {"platform", "admin"},
    ("GET", "/v1/sets"): {"analyst", "admin"},
    ("POST", "/v1/sets"): {"analyst", "admin"},
    ("POST", "/v1/sets/{name}/items"): {"analyst", "admin"},
    ("POST", "/v1/sets/{name}/items/{item_id}/withdraw"): {"analyst", "admin"},
    ("POST", "/v1/sets/{name}/pictures"): {"analyst", "admin"},
    ("PUT", "/v1/sets/{name}/ways"): {"analyst", "admin"},
    ("GET", "/v1/orgs"): {"admin"},
    ("POST", "/v1/orgs"): {"admin"},
    ("POST", "/v1/orgs/{name}/keys"): {"admin"},
    ("GET", "/v1/keys"): {"admin"},
    ("DELETE", "/v1/keys/{key_id}"): {"admin"},
    ("PUT", "/v1/orgs/{name}/subscription"): {"admin"},
    ("PATCH", "/v1/orgs/{name}"): {"admin"},
    ("GET", "/v1/probing-alerts"): {"admin"},
    ("GET", "/v1/items"): {"analyst", "admin"},
    ("GET", "/v1/items/{item_id}"): {"analyst", "admin"},
    ("POST", "/v1/items/{item_id}/grade"): {"analyst", "admin"},
    ("POST", "/v1/items/{item_id}/police-cleared"): {"analyst", "admin"},
    ("GET", "/v1/items/{item_id}/preview"): {"analyst", "admin"},
    ("POST", "/v1/reports"): {"admin"},  # and flagger (tests/test_api_reports.py)
    ("GET", "/v1/reports/{report_id}"): {"admin"},
    ("GET", "/v1/notices"): {"analyst", "admin", "hoster"},
    ("GET", "/v1/notices/{notice_id}"): {"analyst", "admin", "hoster"},
    ("POST", "/v1/notices/{notice_id}/answer"): {"hoster"},
    ("GET", "/v1/forwards"): {"analyst", "admin"},
    # the authority (every role in tests/test_api_authority.py)
    ("GET", "/v1/escalations"): {"admin"},
    ("GET", "/v1/cases"): {"admin"},
    ("POST", "/v1/cases"): {"admin"},
    ("GET", "/v1/cases/{case_id}"): {"admin"},
    ("POST", "/v1/cases/{case_id}/items"): {"admin"},
    ("POST", "/v1/cases/{case_id}/close"): {"admin"},
    ("GET", "/v1/orders"): {"admin"},
    ("POST", "/v1/orders"): {"admin"},
    ("GET", "/v1/orders/{order_id}"): {"admin"},
    ("POST", "/v1/orders/{order_id}/acknowledge"): set(),  # hoster
    ("POST", "/v1/orders/{order_id}/withdraw"): {"admin"},
    ("POST", "/v1/orders/{order_id}/publish"): {"admin"},
    ("POST", "/v1/orders/{order_id}/resend"): {"admin"},
    ("GET", "/v1/fines"): {"admin"},
    ("POST", "/v1/fines"): {"admin"},
    ("GET", "/v1/fines/{fine_id}"): {"admin"},
    ("POST", "/v1/fines/{fine_id}/objection"): {"admin"},
    ("POST", "/v1/fines/{fine_id}/appeal"): {"admin"},
    ("POST", "/v1/fines/{fine_id}/publish"): {"admin"},
    ("GET", "/v1/hosters/{asn}/record"): {"admin"},
    ("GET", "/v1/dsa/statements"): {"platform"},
    ("GET", "/v1/dsa/flagger-report"): {"analyst", "admin"},
    # partners read with their own token, never an API key (tests/test_exchange.py)
    ("GET", "/v1/feeds/{set_name}"): set(),
}
ROLES = ("platform", "analyst", "admin")


def concrete(path: str) -> str:
    return (
        path.replace("{hit_id}", "999999")
        .replace("{name}", "police")
        .replace("{key_id}", "999999")
        .replace("{item_id}", "999999")
        .replace("{report_id}", "999999")
        .replace("{notice_id}", "999999")
        .replace("{case_id}", "999999")
        .replace("{order_id}", "999999")
        .replace("{fine_id}", "999999")
        .replace("{asn}", "64500")
        .replace("{set_name}", "police")
    )


def test_every_route_is_in_the_matrix_and_guarded(db_url):
    with running(db_url) as world:
        with world.client(None) as anonymous:
            spec = anonymous.get("/openapi.json").json()
            served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
            assert served - OPEN == set(ROUTES), "a route without a place in the roles matrix"
            for method, path in ROUTES:
                response = anonymous.request(method, concrete(path))
                assert response.status_code == 401, (method, path)
                assert set(response.json()) == {"error"}
        for role in ROLES:
            with world.client(role) as client:
                for (method, path), allowed in ROUTES.items():
                    response = client.request(method, concrete(path), json={})
                    if role in allowed:
                        assert response.status_code not in (401, 403), (role, method, path)
                    else:
                        assert response.status_code == 403, (role, method, path, response.text)
                        assert set(response.json()) == {"error"}


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_both_key_headers_work(db_url, header):
    with running(db_url) as world:
        key = world.keys["platform"]
        value = f"Bearer {key}" if header == "Authorization" else key
        with world.client(None, headers={header: value}) as client:
            assert client.get("/v1/stats").status_code == 200

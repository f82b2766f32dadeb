"""The service's state is one typed object, made by ``create_app()`` and shared by the API's
routes, its check lane and the pages."""

from __future__ import annotations

from meldpunt.api import create_app
from meldpunt.api.follower import IndexFollower
from meldpunt.api.limits import RateLimiter
from meldpunt.api.state import ServiceState, service_of
from meldpunt.api.writer import Writer
from service import service_settings


def test_the_application_keeps_one_service_state(tmp_path):
    settings = service_settings(f"sqlite:///{tmp_path / 'meldpunt.db'}", rate_per_second=7)
    app = create_app(settings)
    service = service_of(app)
    assert isinstance(service, ServiceState) and service.settings is settings
    assert isinstance(service.follower, IndexFollower) and isinstance(service.writer, Writer)
    assert isinstance(service.limiter, RateLimiter) and service.limiter.rate == 7
    assert service.key_cache is not service.subscriptions
    # nothing else hangs loose on app.state for routes to reach by name (the pages keep their
    # sign-in sessions there too, made on first use: those are the pages' own)
    assert list(app.state._state) == ["service"]


def test_two_applications_do_not_share_state(tmp_path):
    first = create_app(service_settings(f"sqlite:///{tmp_path / 'a.db'}"))
    second = create_app(service_settings(f"sqlite:///{tmp_path / 'b.db'}"))
    assert service_of(first) is not service_of(second)
    assert service_of(first).key_cache is not service_of(second).key_cache

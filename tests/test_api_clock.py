"""The service's key cache and rate limiter follow meldpunt's clock, so a test moves them."""

from __future__ import annotations

import pytest

from meldpunt.api.auth import TtlCache
from meldpunt.api.limits import RateLimiter
from meldpunt.clock import FrozenClock, use_clock
from meldpunt.errors import RateLimited


def test_a_cached_key_answer_expires_when_the_clock_says_so():
    with use_clock(FrozenClock()) as frozen:
        cache: TtlCache[str] = TtlCache(5)
        cache.put("digest", "principal")
        frozen.advance(4.9)
        assert cache.get("digest") == (True, "principal")
        frozen.advance(0.2)
        assert cache.get("digest") == (False, None)


def test_a_rate_limited_key_gets_tokens_back_as_the_clock_moves():
    with use_clock(FrozenClock()) as frozen:
        limiter = RateLimiter(rate=1, burst=2)
        limiter.take(7)
        limiter.take(7)
        with pytest.raises(RateLimited) as refused:
            limiter.take(7)
        assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
        limiter.take(8)  # another key has its own bucket
        frozen.advance(1)
        limiter.take(7)

"""Rate limits and monthly quotas on Redis (a real redis-server and fakeredis)."""

from __future__ import annotations

import calendar

import pytest

from gateway.limits import RateLimiter
from gateway.quotas import MonthlyQuota, month_bounds

NOW = 1_800_000_000.0


async def test_the_sixth_submission_in_a_minute_is_refused_with_retry_after(redis_client) -> None:
    limiter = RateLimiter(redis_client, limit=5, window_s=60)
    decisions = [await limiter.hit("ip:1.2.3.4", now=NOW + i) for i in range(5)]
    assert all(d.allowed for d in decisions) and [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = await limiter.hit("ip:1.2.3.4", now=NOW + 10)
    assert not refused.allowed and refused.remaining == 0
    # The first submission (at NOW) leaves the window at NOW + 60: 50 s after NOW + 10.
    assert refused.retry_after_s == 50 and refused.headers()["Retry-After"] == "50"
    assert (await limiter.hit("ip:other", now=NOW + 10)).allowed, "limits are per client"


async def test_refused_attempts_do_not_use_up_the_window_and_old_ones_leave_it(redis_client) -> None:
    limiter = RateLimiter(redis_client, limit=2, window_s=60)
    assert (await limiter.hit("c", now=NOW)).allowed
    assert (await limiter.hit("c", now=NOW + 30)).allowed
    for second in range(31, 40):
        assert not (await limiter.hit("c", now=NOW + second)).allowed
    # At NOW + 60.5 the first has left; the refused ones were never counted.
    assert (await limiter.hit("c", now=NOW + 60.5)).allowed
    assert not (await limiter.hit("c", now=NOW + 61)).allowed


async def test_two_limiters_on_one_redis_share_the_count(redis_client) -> None:
    first, second = (RateLimiter(redis_client, limit=3, window_s=60) for _ in range(2))
    assert (await first.hit("key:a", now=NOW)).allowed
    assert (await second.hit("key:a", now=NOW + 1)).allowed
    assert (await first.hit("key:a", now=NOW + 2)).allowed
    assert not (await second.hit("key:a", now=NOW + 3)).allowed


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        RateLimiter(None, limit=0, window_s=60)  # type: ignore[arg-type]


def test_month_bounds_roll_over_the_year() -> None:
    assert month_bounds(calendar.timegm((2026, 12, 31, 23, 59, 59))) == (
        "2026-12",
        calendar.timegm((2027, 1, 1, 0, 0, 0)),
    )
    assert month_bounds(calendar.timegm((2026, 2, 1, 0, 0, 0)))[0] == "2026-02"


async def test_quota_counts_jobs_refuses_past_the_plan_and_gives_back(redis_client) -> None:
    quotas = MonthlyQuota(redis_client, {"free": 3, "pro": 100})
    allowed, state = await quotas.take("key:a", "free", 2, now=NOW)
    assert allowed and state.used == 2 and state.remaining == 1
    allowed, state = await quotas.take("key:a", "free", 2, now=NOW)
    assert not allowed and state.used == 2, "a batch that does not fit is refused whole, uncounted"
    assert state.headers()["X-Quota-Remaining"] == "1" and state.headers()["X-Quota-Limit"] == "3"
    refunded = await quotas.refund("key:a", "free", 1, now=NOW)
    assert refunded.used == 1
    assert (await quotas.take("key:a", "free", 2, now=NOW))[0]
    # A new month starts from zero.
    _, next_month = month_bounds(NOW)
    allowed, state = await quotas.take("key:a", "free", 3, now=next_month + 1)
    assert allowed and state.remaining == 0
    assert (await quotas.state("key:b", "pro", now=NOW)).remaining == 100


async def test_no_plan_means_no_quota_and_an_unknown_plan_is_an_error(redis_client) -> None:
    quotas = MonthlyQuota(redis_client, {"free": 1})
    assert await quotas.take("session:x", "", 50) == (True, None)
    assert await quotas.state("session:x", "") is None
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        await quotas.take("key:a", "gold", 1)

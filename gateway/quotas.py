"""Monthly job quotas per plan (calendar month, UTC), counted in Redis."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

import redis.asyncio as aioredis


@dataclass(frozen=True)
class QuotaState:
    """A caller's quota this month."""

    plan: str
    limit: int
    used: int
    reset_at: int  # Unix time the count starts again

    @property
    def remaining(self) -> int:
        """Jobs left this month."""
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """X-Quota-* response headers."""
        return {
            "X-Quota-Plan": self.plan,
            "X-Quota-Limit": str(self.limit),
            "X-Quota-Remaining": str(self.remaining),
            "X-Quota-Reset": str(self.reset_at),
        }


def month_bounds(now: float) -> tuple[str, int]:
    """("YYYY-MM", Unix time of the next month's first second) for `now`, in UTC."""
    moment = time.gmtime(now)
    year, month = (moment.tm_year + 1, 1) if moment.tm_mon == 12 else (moment.tm_year, moment.tm_mon + 1)
    return f"{moment.tm_year:04d}-{moment.tm_mon:02d}", calendar.timegm((year, month, 1, 0, 0, 0))


class MonthlyQuota:
    """Jobs per calendar month per owner; the plan sets the limit. An empty plan has no quota."""

    def __init__(self, client: aioredis.Redis, plans: dict[str, int], prefix: str = "poster:gw:quota") -> None:
        self._redis = client
        self.plans = dict(plans)
        self._prefix = prefix

    def _key(self, owner: str, now: float) -> tuple[str, int]:
        month, reset_at = month_bounds(now)
        return f"{self._prefix}:{owner}:{month}", reset_at

    def _limit(self, plan: str) -> int:
        if plan not in self.plans:
            raise ValueError(f"unknown plan {plan!r}; configured plans: {', '.join(sorted(self.plans))}")
        return self.plans[plan]

    async def take(self, owner: str, plan: str, jobs: int, now: float | None = None) -> tuple[bool, QuotaState | None]:
        """Counts `jobs` new jobs if they all fit this month; (False, state) without counting otherwise."""
        if not plan:
            return True, None
        now = time.time() if now is None else now
        limit = self._limit(plan)
        key, reset_at = self._key(owner, now)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, jobs)
            pipe.expireat(key, reset_at + 86_400)
            used, _ = await pipe.execute()
        if used > limit:
            used = await self._redis.decrby(key, jobs)
            return False, QuotaState(plan, limit, int(used), reset_at)
        return True, QuotaState(plan, limit, int(used), reset_at)

    async def refund(self, owner: str, plan: str, jobs: int, now: float | None = None) -> QuotaState | None:
        """Gives back `jobs` that were counted but not created (the job service refused them)."""
        if not plan or jobs <= 0:
            return await self.state(owner, plan, now)
        now = time.time() if now is None else now
        key, reset_at = self._key(owner, now)
        used = await self._redis.decrby(key, jobs)
        return QuotaState(plan, self._limit(plan), max(0, int(used)), reset_at)

    async def state(self, owner: str, plan: str, now: float | None = None) -> QuotaState | None:
        """This month's count, or None for a plan without a quota."""
        if not plan:
            return None
        now = time.time() if now is None else now
        key, reset_at = self._key(owner, now)
        used = await self._redis.get(key)
        return QuotaState(plan, self._limit(plan), int(used or 0), reset_at)

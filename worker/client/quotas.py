"""Per-owner quotas: what one owner's jobs may spend per period, across all of
them (:mod:`worker.store.budgets`). ``client.set_quota("alice", "usd=20/day")``;
past it, a spend raises ``QuotaExceeded`` in the job and a submit of hers is
refused, saying when the quota renews. Mixed into both clients."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis

from ..core.errors import InvalidArgs
from ..core.quotas import Quota, from_json, parse_quotas, quotas_json
from ..core.settings import Settings
from ..store.budgets import usage
from ..store.keys import Keys
from ..wire.submission import MAX_OWNER

T = TypeVar("T")


def checked_owner(owner: str) -> str:
    if not isinstance(owner, str) or not 0 < len(owner) <= MAX_OWNER:
        raise InvalidArgs("quota", f"an owner is 1 to {MAX_OWNER} characters")
    return owner


class AsyncQuotaMethods:
    """Quotas on :class:`~worker.client.AsyncSkillClient`."""

    settings: Settings
    keys: Keys

    @property
    def redis(self) -> Redis:  # pragma: no cover - the client provides it
        raise NotImplementedError

    async def set_quota(self, owner: str, quota: str) -> dict[str, Quota]:
        """Cap what ``owner``'s jobs spend per period: ``"usd=20/day, tokens=5e5/6h"``
        (periods: s, m, h, d, w, or second ... week, with a count: ``10m``)."""
        parsed = parse_quotas(quota)
        if not parsed:
            raise InvalidArgs("quota", "name at least one UNIT=AMOUNT/PERIOD")
        await self.redis.hset(self.keys.quotas, checked_owner(owner), quotas_json(parsed))
        return parsed

    async def remove_quota(self, owner: str) -> bool:
        """Forget ``owner``'s own quota (the default, if any, applies again)."""
        return bool(await self.redis.hdel(self.keys.quotas, checked_owner(owner)))

    async def quotas(self) -> dict[str, dict[str, Quota]]:
        """Every owner's own quota."""
        raw = await self.redis.hgetall(self.keys.quotas)
        return {str(owner): from_json(text) for owner, text in sorted(raw.items())}

    async def quota_usage(self, owner: str) -> dict[str, dict[str, float]]:
        """Per unit: the limit, the period, what was spent in it, when it renews."""
        return await usage(self.redis, self.keys, self.settings, checked_owner(owner))


class QuotaMethods:
    """The same on :class:`~worker.client.SkillClient`, blocking."""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:  # pragma: no cover - the client's
        raise NotImplementedError

    def _answerer(self) -> AsyncQuotaMethods:  # pragma: no cover - the client's
        raise NotImplementedError

    def set_quota(self, owner: str, quota: str) -> dict[str, Quota]:
        """See :meth:`AsyncQuotaMethods.set_quota`."""
        return self._run(self._answerer().set_quota(owner, quota))

    def remove_quota(self, owner: str) -> bool:
        return self._run(self._answerer().remove_quota(owner))

    def quotas(self) -> dict[str, dict[str, Quota]]:
        return self._run(self._answerer().quotas())

    def quota_usage(self, owner: str) -> dict[str, dict[str, float]]:
        return self._run(self._answerer().quota_usage(owner))

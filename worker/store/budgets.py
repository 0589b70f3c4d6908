"""Spending and quotas in Redis (see :mod:`worker.interface.budgets`).

A job's ceilings are ``budget:<unit>`` fields of its record (written by
``SUBMIT``, raised by ``budget_raise.lua``) and what it spent, its own and
its descendants', ``spent:<unit>``. ``spend.lua`` walks from the job up
its call tree, checks every ceiling and the owner's quota, and only then adds
the amount to all of them: one script, so children spending in parallel on
any workers never take their tree past a ceiling.

Quotas cap what one owner's jobs spend per period: ``<prefix>:quotas`` maps
an owner to ``{"<unit>": [limit, period]}``; periods are whole multiples of
their length since the epoch (a day renews at 00:00 UTC); what was spent in
the current period is ``<prefix>:quota:<sha1(owner)>:<unit>:<period start>``.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, cast

from redis.asyncio import Redis

from ..core.errors import BudgetExceeded, DeliverySuperseded, QuotaExceeded
from ..core.quotas import Quota, from_json, quotas_json
from ..core.settings import Settings
from .jobs import job_argv, job_keys
from .keys import Keys
from .scriptfiles import load

SPEND = load("spend")
RAISE = load("budget_raise")


def owner_digest(owner: str) -> str:
    return hashlib.sha1(owner.encode()).hexdigest()  # noqa: S324 (a key name, as Lua writes it)


def period_start(quota: Quota, now: float) -> int:
    return int(math.floor(now / quota.period) * quota.period)


class RedisLedger:
    """One run's spending, checked and kept by ``spend.lua`` (a :class:`Ledger`)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        job_id: str,
        delivery: str,
        skill_budget: dict[str, float],
    ) -> None:
        self.redis, self.keys, self.settings = redis, keys, settings
        self.job_id, self.delivery, self.skill_budget = job_id, delivery, skill_budget

    async def spend(self, amount: float, unit: str) -> float:
        own = self.skill_budget.get(unit)
        reply = await self.redis.register_script(SPEND)(
            keys=[*job_keys(self.keys, self.job_id), self.keys.quotas],
            args=[
                *job_argv(self.settings, self.job_id),
                self.keys.prefix,
                unit,
                repr(amount),
                "" if own is None else repr(own),
                self.delivery,
                str(self.settings.max_call_depth),
                quotas_json(self.settings.default_quotas) if self.settings.default_quota else "",
            ],
        )
        said = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        if said[0] == "ok":
            return float(said[1]) if said[1] else math.inf
        if said[0] == "exceeded":
            raise BudgetExceeded(said[1], unit, amount, float(said[2]), float(said[3]))
        if said[0] == "quota":
            raise QuotaExceeded(said[1], unit, float(said[2]), float(said[3]))
        raise DeliverySuperseded(self.job_id)

    async def raise_budget(self, crossed: BudgetExceeded, by: float, marker: int) -> None:
        said = await self.redis.register_script(RAISE)(
            keys=[*job_keys(self.keys, self.job_id), self.keys.job(crossed.job_id)],
            args=[
                *job_argv(self.settings, self.job_id),
                crossed.unit,
                repr(by),
                repr(crossed.ceiling),
                str(marker),
                self.delivery,
            ],
        )
        if (said.decode() if isinstance(said, bytes) else str(said)) == "superseded":
            raise DeliverySuperseded(self.job_id)


async def owner_quotas(
    redis: Redis, keys: Keys, settings: Settings, owner: str
) -> dict[str, Quota]:
    """The owner's own quotas, else the deployment's default (``SKILLQ_DEFAULT_QUOTA``)."""
    own = await redis.hget(keys.quotas, owner)
    return from_json(own) if own else settings.default_quotas


async def usage(
    redis: Redis, keys: Keys, settings: Settings, owner: str, now: float | None = None
) -> dict[str, dict[str, float]]:
    """Per unit: the limit, what the owner's jobs spent this period, when it renews."""
    quotas = await owner_quotas(redis, keys, settings, owner)
    at = time.time() if now is None else now
    digest = owner_digest(owner)
    found: dict[str, dict[str, float]] = {}
    for unit, quota in sorted(quotas.items()):
        start = period_start(quota, at)
        used = await redis.get(keys.quota_used(digest, unit, start))
        found[unit] = {
            "limit": quota.limit,
            "period": quota.period,
            "spent": float(cast(Any, used)) if used else 0.0,
            "renews_at": float(start + quota.period),
        }
    return found

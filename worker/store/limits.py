"""Deployment-wide limits on starting jobs: concurrency, per-key concurrency, rate.

Celery's ``rate_limit`` counts per worker process, and it has no concurrency
cap at all; skillq keeps every limit in Redis, so it holds however many
workers run. One script, :data:`ADMIT`, decides a start atomically, with
Redis's clock (``TIME``), so worker clocks never matter:

* **Concurrency** (``@skill(concurrency=N)``, ``key_concurrency=M`` with
  ``submit(concurrency_key=)``): a sorted set per limit holds the jobs
  running under it, each scored by when its *lease* ends. The worker running
  the job renews the lease every third of ``SKILLQ_LIMIT_LEASE`` and drops
  it when the attempt ends; a worker that dies stops renewing, and the next
  admission after the lease ends removes the slot. A crashed worker costs a
  limit at most one lease of capacity, never a slot for good.
* **Rate** (``@skill(rate_limit="100/m")``): GCRA, the generic cell rate
  algorithm of ATM networks (ITU-T I.371; the algorithm of the redis-cell
  module and of Brandur Leach's ``throttled``), with no burst: starts are
  spaced ``period / count`` apart. One key holds the theoretical arrival
  time. A job over the rate *reserves* the next free start time and comes
  back exactly then, instead of polling with everyone else waiting; the
  reservation (``:held``) makes its return count as the start it booked.
  Booked jobs come back a little late (the broker's delivery), so late
  arrivals could bunch up; a log of the last period's starts (``:starts``,
  a sliding window of at most ``count`` entries) turns away a start that
  would make ``count + 1`` in one period, and the job asks again when the
  oldest start leaves the window, its booking kept.
  Reservations reach at most :data:`HORIZON` seconds ahead; further than
  that a job comes back at the horizon and books then, so a long backlog
  costs one message per job per horizon, not a stampede.

A job over a limit is put back on its queue with a delay (Celery's ETA): it
waits in Redis and in the broker, never in a pool slot. Concurrency waits
back off exponentially (:func:`concurrency_wait`), jittered, from
:data:`WAIT_FIRST` to ``SKILLQ_LIMIT_WAIT_MAX``; the record says why it waits
(``notice``). Admission is not first come, first served: a freed slot goes
to whichever job asks first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..core.settings import Settings
from ..interface.skills import Skill
from .keys import Keys
from .scriptfiles import load

WAIT_FIRST = 0.2  # seconds: the first recheck of a job waiting for a slot
HORIZON = 60.0  # seconds: the furthest a rate reservation reaches


def horizon(settings: Settings) -> float:
    """How far ahead a job may be re-queued (a rate reservation's reach)."""
    return HORIZON


@dataclass(frozen=True)
class Plan:
    """The limits one job's start must pass, as ``ADMIT`` takes them."""

    slots: tuple[tuple[str, int, str], ...]  # (zset key, cap, what it limits)
    rate_key: str = ""
    held_key: str = ""
    interval: float = 0.0
    count: int = 0
    period: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.slots and not self.rate_key

    @property
    def slot_keys(self) -> list[str]:
        return [key for key, _, _ in self.slots]


def plan_for(keys: Keys, skill: Skill, concurrency_key: str | None) -> Plan:
    slots: list[tuple[str, int, str]] = []
    if skill.concurrency:
        slots.append(
            (
                keys.limit_slots(skill.name),
                skill.concurrency,
                f"skill {skill.name!r} runs at most {skill.concurrency} at once",
            )
        )
    if skill.key_concurrency and concurrency_key is not None:
        slots.append(
            (
                keys.limit_key_slots(skill.name, concurrency_key),
                skill.key_concurrency,
                f"skill {skill.name!r} runs at most {skill.key_concurrency} at once for "
                f"concurrency key {concurrency_key!r}",
            )
        )
    if skill.rate_limit is None:
        return Plan(tuple(slots))
    return Plan(
        tuple(slots),
        keys.limit_rate(skill.name),
        keys.limit_rate(skill.name) + ":held",
        skill.rate_limit.interval,
        skill.rate_limit.count,
        skill.rate_limit.period,
    )


ADMIT = load("admit")
RENEW = load("renew")
RELEASE = load("release")


@dataclass(frozen=True)
class Admission:
    """What ``ADMIT`` decided: run now, or wait ``delay`` seconds (and why)."""

    run: bool
    delay: float = 0.0
    reason: str = ""
    took: bool = False  # slots were taken (release them when the attempt ends)


def admit_args(
    settings: Settings, plan: Plan, job_id: str, record: str
) -> tuple[list[str], list[str]]:
    """``ADMIT``'s keys and arguments for one job."""
    keys = [record, *plan.slot_keys]
    if plan.rate_key:
        keys += [plan.rate_key, plan.held_key, plan.rate_key + ":starts"]
    args = [
        job_id,
        repr(settings.limit_lease),
        str(len(plan.slots)),
        *(str(cap) for _, cap, _ in plan.slots),
        repr(plan.interval) if plan.rate_key else "",
        repr(horizon(settings)),
        "waiting for its turn under the skill's rate limit",
        *(f"waiting for a slot: {what}" for _, _, what in plan.slots),
    ]
    if plan.rate_key:
        args += [str(plan.count), repr(plan.period)]
    return keys, args


def admission(settings: Settings, plan: Plan, reply: Any) -> Admission:
    """Turn ``ADMIT``'s reply into a decision (and a wait, jittered)."""
    kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    if kind in ("run", "proceed"):
        return Admission(True, took=kind == "run")
    if kind == "rate":
        return Admission(False, float(reply[1]), "its turn under the skill's rate limit")
    position, waits = int(reply[1]), int(reply[2])
    return Admission(
        False, concurrency_wait(settings, waits), f"a slot: {plan.slots[position - 1][2]}"
    )


def concurrency_wait(settings: Settings, waits: int) -> float:
    """Seconds until a job waiting for a slot asks again: doubling from
    :data:`WAIT_FIRST` up to ``SKILLQ_LIMIT_WAIT_MAX``, with "equal jitter" so
    waiters that were refused together do not come back together."""
    ceiling = min(settings.limit_wait_max, horizon(settings))
    delay = min(ceiling, WAIT_FIRST * 2.0 ** max(0, min(waits - 1, 30)))
    return delay / 2 + random.uniform(0, delay / 2)

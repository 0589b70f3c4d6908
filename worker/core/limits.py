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

from .keys import Keys
from .settings import Settings
from .skills import Skill

WAIT_FIRST = 0.2  # seconds: the first recheck of a job waiting for a slot
HORIZON = 60.0  # seconds: the furthest a rate reservation reaches


def horizon(settings: Settings) -> float:
    """How far ahead a job may be re-queued: a held ETA message must come back
    well within the visibility timeout, or Redis would deliver it twice."""
    return max(1.0, min(HORIZON, settings.visibility_timeout / 2))


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


# KEYS 1: the job record, 2..n+1: the concurrency sets, then (with a rate
# limit) the rate key, its reservations and the log of its recent starts.
# ARGV 1: job id, 2: lease seconds, 3: n, 4..n+3: the caps, n+4: the rate's
# interval ('' for none), n+5: the reservation horizon, n+6: the record's
# notice while it waits for its turn, n+7..2n+6: its notice while limit i is
# full, 2n+7 and 2n+8: the rate's count and period (with a rate limit).
# Returns {'run'} (slots taken), {'proceed'} (the job has ended: take nothing
# and let START say so), {'full', i, waits} (concurrency limit i is full; the
# job has now waited waits times), {'rate', seconds} (come back then).
ADMIT = r"""
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'queued' and state ~= 'retrying' and state ~= 'running' then
  return {'proceed'}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local job, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local set = KEYS[1 + i]
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)  -- leases of dead workers
  if not redis.call('ZSCORE', set, job) and redis.call('ZCARD', set) >= tonumber(ARGV[3 + i]) then
    local waits = 0
    if state then
      waits = redis.call('HINCRBY', KEYS[1], 'limit_waits', 1)
      redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6 + i])
    end
    return {'full', i, waits}
  end
end
local interval = ARGV[n + 4]
if interval ~= '' then
  interval = tonumber(interval)
  local rate, held, reach = KEYS[n + 2], KEYS[n + 3], tonumber(ARGV[n + 5])
  -- The starts of the last period, by Redis time: however late booked jobs
  -- arrive, no period ever holds more than count of them.
  local starts, count, period = KEYS[n + 4], tonumber(ARGV[2 * n + 7]), tonumber(ARGV[2 * n + 8])
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - period)
  local function until_room()
    if redis.call('ZCARD', starts) < count then return nil end
    local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
    return tostring(math.max(0.001, tonumber(oldest[2]) + period - now))
  end
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now - reach)
  local booked = redis.call('ZSCORE', held, job)
  if booked and tonumber(booked) > now + 0.001 then
    return {'rate', tostring(tonumber(booked) - now)}  -- early: its time is still to come
  elseif booked then
    local wait = until_room()
    if wait then return {'rate', wait} end  -- late arrivals bunched up: keep the booking
    redis.call('ZREM', held, job)
  else
    local start = math.max(tonumber(redis.call('GET', rate) or '0'), now)
    if start - now > reach then
      if state then redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6]) end
      return {'rate', tostring(reach)}  -- too far ahead to book: ask again then
    end
    if start <= now then
      local wait = until_room()
      if wait then return {'rate', wait} end
    end
    redis.call('SET', rate, tostring(start + interval), 'PX',
               math.ceil((start + interval - now) * 1000) + 1000)
    if start > now then
      redis.call('ZADD', held, start, job)
      redis.call('PEXPIRE', held, math.ceil(reach * 2000) + 1000)
      if state then redis.call('HSET', KEYS[1], 'notice', ARGV[n + 6]) end
      return {'rate', tostring(start - now)}
    end
  end
  redis.call('ZADD', starts, now, job .. ':' .. tostring(now))
  redis.call('PEXPIRE', starts, math.ceil(period * 1000) + 1000)
end
for i = 1, n do
  redis.call('ZADD', KEYS[1 + i], now + lease, job)
  redis.call('PEXPIRE', KEYS[1 + i], math.ceil(lease * 2000) + 1000)
end
if state then
  redis.call('HDEL', KEYS[1], 'limit_waits')
  redis.call('HSET', KEYS[1], 'admitted_at', tostring(now))
end
return {'run'}
"""

# KEYS: concurrency sets; ARGV 1: lease seconds, 2..: the job holding each set's
# slot (aligned with KEYS). Extends only slots still held (XX): a slot that
# expired meanwhile is not taken back behind the limit's back.
RENEW = r"""
local clock = redis.call('TIME')
local until_ = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[1])
for i, set in ipairs(KEYS) do
  redis.call('ZADD', set, 'XX', until_, ARGV[i + 1])
end
return #KEYS
"""

# KEYS: concurrency sets; ARGV 1: the job.
RELEASE = r"""
for _, set in ipairs(KEYS) do redis.call('ZREM', set, ARGV[1]) end
return #KEYS
"""


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

"""The dashboard's per-minute rollups: 1,000 jobs ending on real workers (by
success, failure and cancel) add up to 1,000 by outcome, with a run time for
each one that ran and the queue's depth; a simulated day and a half of
minutes leaves every rollup with a bounded size and a lifetime of a day."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.core.errors import InvalidArgs, JobCancelled, JobFailed
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.store.keys import ROLLUP_TTL, Keys
from worker.store.rollups import Minute, bucket_ms, percentiles
from worker.store.scriptfiles import load


def test_a_thousand_jobs_add_up_by_outcome(
    start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    """A deployment of its own (key prefix and queue): no other test's jobs in its
    minutes, and no other worker takes its jobs."""
    prefix = f"roll{uuid.uuid4().hex[:6]}"
    start_worker(
        pool="threads",
        concurrency=4,
        queues=prefix,
        env={"SKILLQ_KEY_PREFIX": prefix},
        ready_prefix=prefix,
    )
    with SkillClient(settings.model_copy(update={"key_prefix": prefix})) as client:
        ok = [client.submit("echo", {"message": str(i)}, queue=prefix) for i in range(900)]
        bad = [client.submit("boom", queue=prefix) for _ in range(60)]
        later = [
            client.submit("echo", {"message": "never"}, countdown=3600, queue=prefix)
            for _ in range(40)
        ]
        for job in later:
            assert client.cancel(job)
        for job in ok:
            client.result(job, timeout=120)
        for job in bad:
            with pytest.raises(JobFailed):
                client.result(job, timeout=60)
        for job in later:
            with pytest.raises(JobCancelled):
                client.result(job, timeout=10)
        stats = client.stats(3600)
        assert stats.totals["ended"] == {"succeeded": 900, "failed": 60, "cancelled": 40}
        ran = sum(sum(minute.durations.values()) for minute in stats.minutes)
        assert ran == 960  # the cancelled ones never started
        assert stats.totals["percentiles_ms"]["p50"] is not None
        assert all(
            stats.totals["percentiles_ms"][p] is not None
            and stats.totals["percentiles_ms"][p] < 60_000
            for p in ("p50", "p95", "p99")
        )
        # The worker's heartbeat samples its queues' depth into the current minute.
        wait_for(lambda: prefix in client.stats(120).minutes[-1].queued, 90, "a depth sample")
        with pytest.raises(InvalidArgs):
            client.stats(10)


def test_a_day_and_a_half_of_minutes_stays_bounded(settings: Settings) -> None:
    """The scripts' own rollup function, called with the clock of 2,160 minutes
    (100 jobs each, every outcome, run times from 0 to a day)."""
    keys = Keys(f"day{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(settings.effective_redis_url)
    script = client.register_script(
        load("prelude") + "rollup(ARGV[6], ARGV[7], ARGV[8] ~= '' and ARGV[8] or nil)\nreturn 1"
    )
    start = 1_800_000_000.0
    outcomes = ("succeeded", "failed", "cancelled")
    with client.pipeline(transaction=False) as pipe:
        for minute in range(2160):
            now = start + minute * 60 + 30
            for job in range(100):
                took = (job * 997.0) % 86_400 if job % 3 != 2 else None
                started = "" if took is None else repr(now - took)
                args = ["0", "0", "0", "", repr(now), keys.prefix, outcomes[job % 3], started]
                script(keys=["k1", "k2", "k3"], args=args, client=pipe)
        pipe.execute()
    found = [key.decode() for key in client.scan_iter(match=f"{keys.prefix}:rollup:*", count=1000)]
    assert len(found) == 2160
    sizes = []
    for key in found:
        ttl = client.ttl(key)
        assert 0 < ttl <= ROLLUP_TTL
        fields = client.hlen(key)
        assert fields <= 3 + 81  # three outcomes and at most 81 run-time buckets
        sizes.append(int(client.memory_usage(key) or 0))
    # What a day holds (the keys older than ROLLUP_TTL expire): well under 4 MB.
    assert max(sizes) * (ROLLUP_TTL // 60 + 1) < 4 * 1024 * 1024
    first = Minute.from_hash(0, client.hgetall(found[0]))
    assert sum(first.ended.values()) == 100
    client.delete(*found)
    client.close()


def test_percentiles_come_from_the_bucket_bounds() -> None:
    assert percentiles({}) == {"p50": None, "p95": None, "p99": None}
    # 90 runs in bucket 2 (up to 2 ms), 9 in bucket 20 (1.024 s), 1 in bucket 40.
    found = percentiles({2: 90, 20: 9, 40: 1})
    assert found == {"p50": bucket_ms(2), "p95": bucket_ms(20), "p99": bucket_ms(20)}
    assert percentiles({2: 90, 20: 9, 40: 1}, (100,)) == {"p100": bucket_ms(40)}

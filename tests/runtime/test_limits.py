"""Deployment-wide limits on real workers: a concurrency cap holds across three
workers (sampled from the job records), per-key caps hold per key, a rate limit
holds across two workers, a slot held by a killed worker comes back when its
lease ends, and a job waiting for a slot can be cancelled."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker.client import SkillClient
from worker.core.errors import ConfigurationError, InvalidArgs, InvalidAuth
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.interface.skills import Rate, skill
from worker.store.job_status import JobStatus
from worker.wire.signing import sign, verify

LIMITED = {"SKILLQ_SKILLS": "limit_skills", "SKILLQ_LIMIT_WAIT_MAX": "0.5"}


@pytest.fixture(scope="module")
def three(start_worker: Callable[..., WorkerProcess]) -> Iterator[list[WorkerProcess]]:
    workers = [
        start_worker(pool=pool, concurrency=2, queues="limits", env=LIMITED)
        for pool in ("prefork", "prefork", "threads")
    ]
    yield workers
    for process in workers:
        process.stop(timeout=10)


def most_at_once(statuses: list[JobStatus]) -> int:
    """The most jobs whose [start, finish] intervals overlap at one moment."""
    edges = []
    for status in statuses:
        assert status.started_at is not None and status.finished_at is not None
        edges += [(status.started_at, 1), (status.finished_at, -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += step
        peak = max(peak, running)
    return peak


def running(client: SkillClient, jobs: list[str]) -> None:
    wait_for(
        lambda: all(client.status(job).state == "running" for job in jobs),
        timeout=30,
        what="the jobs to run",
    )


def finish_all(client: SkillClient, jobs: list[str]) -> list[JobStatus]:
    for job in jobs:
        client.result(job, timeout=120)
    return [client.status(job) for job in jobs]


def test_a_concurrency_cap_holds_across_three_workers(
    three: list[WorkerProcess], client: SkillClient, raw: redis.Redis
) -> None:
    jobs = [client.submit("capped", {"seconds": 0.3}) for _ in range(10)]
    mine = set(jobs)
    samples = []
    while not all(client.status(job).finished for job in jobs):
        # One read of the running index is a snapshot; reading ten records one
        # by one is not (a job can end and another start between two reads).
        running = {
            str(job, "utf-8") for job in cast(list[bytes], raw.zrange("skillq:running", 0, -1))
        }
        samples.append(len(running & mine))
    statuses = finish_all(client, jobs)
    assert all(status.state == "succeeded" for status in statuses)
    assert max(samples) <= 2, samples
    assert most_at_once(statuses) == 2  # the cap, reached and never passed
    assert len({status.worker for status in statuses}) >= 2  # spread over the workers


def test_a_per_key_cap_holds_per_key(three: list[WorkerProcess], client: SkillClient) -> None:
    keys = ["customer-a", "customer-b"]
    jobs = {
        key: [
            client.submit("per_customer", {"seconds": 0.3}, concurrency_key=key) for _ in range(4)
        ]
        for key in keys
    }
    statuses = {key: finish_all(client, jobs[key]) for key in keys}
    for key in keys:
        assert all(status.state == "succeeded" for status in statuses[key])
        assert most_at_once(statuses[key]) == 1, key
    assert most_at_once(statuses["customer-a"] + statuses["customer-b"]) == 2


def test_a_rate_limit_holds_across_two_workers(
    three: list[WorkerProcess], client: SkillClient, raw: redis.Redis
) -> None:
    jobs = [client.submit("metered", {"n": n}) for n in range(50)]
    statuses = finish_all(client, jobs)
    # When ADMIT let each job start, by Redis's clock: never 21 in one second.
    admitted = sorted(float(raw.hget(f"skillq:job:{job}", "admitted_at") or 0) for job in jobs)
    assert all(admitted)
    busiest = max(sum(1 for t in admitted if first <= t < first + 1.0) for first in admitted)
    assert busiest <= 20, busiest
    starts = sorted(status.started_at or 0.0 for status in statuses)
    assert starts[-1] - starts[0] >= 49 / 20 * 0.9  # and spread out, as 20/s spaces them


def test_a_job_waiting_for_a_slot_says_why_and_can_be_cancelled(
    three: list[WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    holders = [client.submit("capped", {"gate": str(gate)}) for _ in range(2)]
    running(client, holders)
    waiting = client.submit("capped", {})
    wait_for(
        lambda: "waiting for a slot" in (client.status(waiting).notice or ""),
        timeout=30,
        what="the third job to say it waits for a slot",
    )
    status = client.status(waiting)
    assert status.state == "queued" and "at most 2 at once" in (status.notice or "")
    assert client.cancel(waiting)
    assert client.status(waiting).state == "cancelled"
    gate.touch()
    for job in holders:
        assert isinstance(client.result(job, timeout=60), float)
    later = client.submit("capped", {})  # the slots are free again
    assert isinstance(client.result(later, timeout=60), float)
    status = client.status(waiting)
    assert status.state == "cancelled" and status.started_at is None


def test_a_slot_held_by_a_killed_worker_ends_with_its_lease(
    start_worker: Callable[..., WorkerProcess], settings: Settings, tmp_path: Path
) -> None:
    prefix, queue, lease = f"lease{uuid.uuid4().hex[:6]}", "leases", 2.0
    env = {
        **LIMITED,
        "SKILLQ_KEY_PREFIX": prefix,
        "SKILLQ_LIMIT_LEASE": str(lease),
        "SKILLQ_LEASE": "4",
    }
    doomed = start_worker(pool="prefork", concurrency=2, queues=queue, env=env, ready_prefix=prefix)
    gate = tmp_path / "gate"
    with SkillClient(settings.model_copy(update={"key_prefix": prefix})) as client:
        holders = [client.submit("capped", {"gate": str(gate)}, queue=queue) for _ in range(2)]
        running(client, holders)
        survivor = start_worker(
            pool="threads", concurrency=2, queues=queue, env=env, ready_prefix=prefix
        )
        for pid in doomed.pids():
            os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        newcomer = client.submit("capped", {}, queue=queue)
        assert isinstance(client.result(newcomer, timeout=60), float)
        started = client.status(newcomer).started_at
        assert started is not None
        # Held until the dead worker's leases end (renewed every third of a lease),
        # then free (plus a recheck): not stuck for good.
        assert lease / 2 <= started - killed_at <= lease + 3.0, started - killed_at
        gate.touch()
        for job in holders:  # redelivered after the visibility timeout, and they end
            assert isinstance(client.result(job, timeout=60), float)
            assert client.status(job).worker == survivor.hostname
    survivor.stop()


def test_a_concurrency_key_needs_a_skill_that_uses_it(
    three: list[WorkerProcess], client: SkillClient
) -> None:
    with pytest.raises(InvalidArgs, match="declares no key_concurrency"):
        client.submit("capped", {}, concurrency_key="customer-a")
    with pytest.raises(InvalidArgs, match="printable"):
        client.submit("per_customer", {}, concurrency_key="")


def test_the_signature_binds_the_concurrency_key_and_time_limit() -> None:
    given = {"concurrency_key": "a", "time_limit": 5.0}
    signed = sign("k", "job", "per_customer", {}, {}, 60, options=given)
    assert verify("k", "job", "per_customer", {}, signed, options=given).claims == {}
    for other in (
        {"concurrency_key": "b", "time_limit": 5.0},
        {"concurrency_key": "a"},
        {"concurrency_key": "a", "time_limit": 500.0},
        None,
    ):
        with pytest.raises(InvalidAuth, match="concurrency key and time limit"):
            verify("k", "job", "per_customer", {}, signed, options=other)


@pytest.mark.parametrize(
    ("text", "interval"), [("100/m", 0.6), ("20/s", 0.05), ("5/10s", 2.0), ("3600/h", 1.0)]
)
def test_rates_parse(text: str, interval: float) -> None:
    assert Rate.parse("x", text).interval == pytest.approx(interval)


@pytest.mark.parametrize("text", ["0/s", "10/0s", "10", "ten/m", "10/d", "-1/s"])
def test_bad_limits_are_refused_at_declaration(text: str) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit"):
        skill("x", rate_limit=text)
    with pytest.raises(ConfigurationError, match="concurrency"):
        skill("x", concurrency=0)


def test_inline_children_wait_for_their_skills_limit(
    three: list[WorkerProcess], client: SkillClient
) -> None:
    parent = client.submit("fan_out", {"children": 5, "seconds": 0.3})
    children = client.result(parent, timeout=120)
    statuses = finish_all(client, children)
    assert all(status.state == "succeeded" and status.parent == parent for status in statuses)
    assert most_at_once(statuses) <= 2


def test_the_cli_submits_with_a_concurrency_key(
    three: list[WorkerProcess], client: SkillClient, stack_env: dict[str, str]
) -> None:
    done = skillq(
        stack_env, "submit", "per_customer", "--concurrency-key", "cli-customer", "--json"
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job_id"]
    assert isinstance(client.result(job, timeout=60), float)
    refused = skillq(stack_env, "submit", "capped", "--concurrency-key", "k")
    assert refused.returncode == 2 and "key_concurrency" in refused.stderr

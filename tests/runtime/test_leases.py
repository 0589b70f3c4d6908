"""Leased deliveries: a job longer than its lease runs once; a killed or
frozen worker's job runs elsewhere within about a lease; the frozen run,
once it wakes, is stopped and refused (issue: agent jobs of any length)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from tests.conftest import held, wait_for
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess

LEASE = 5.0


def statuses(client: SkillClient, job_id: str) -> list[str]:
    return [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]


def test_a_job_longer_than_its_lease_runs_once_in_prefork_and_threads(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """Before: a job longer than SKILLQ_VISIBILITY_TIMEOUT was handed to a second
    worker while the first still ran. Two workers per pool share each queue,
    so a lapsed lease would show as a second attempt."""
    env = {"SKILLQ_LEASE": str(LEASE)}
    jobs = {}
    for pool in ("prefork", "threads"):
        queue = f"long-{pool}"
        for _ in range(2):
            start_worker(pool=pool, concurrency=1, queues=queue, env=env)
        jobs[pool] = client.submit("sleepy", {"seconds": 3 * LEASE, "tick": 0.5}, queue=queue)
    for pool, job in jobs.items():
        assert client.result(job, timeout=120)["slept"] >= 3 * LEASE, pool
        status = client.status(job)
        assert status.attempts == 1, pool
        assert statuses(client, job) == ["running", "succeeded"], pool


def test_a_killed_workers_job_runs_elsewhere_within_about_a_lease(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    env = {"SKILLQ_LEASE": str(LEASE)}
    queue = "leases-killed"
    doomed = start_worker(pool="prefork", concurrency=1, queues=queue, env=env)
    job = client.submit("sleepy", {"seconds": 600, "tick": 0.2}, queue=queue)
    wait_for(lambda: client.status(job).state == "running", 30, "the job to start")
    survivor = start_worker(pool="threads", concurrency=1, queues=queue, env=env)
    for pid in doomed.pids():
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: client.status(job).worker == survivor.hostname, 60, "the job to move")
    moved_after = time.monotonic() - killed
    # A lease, the sweep's period (a tenth of it, at least 1 s) and the start.
    assert moved_after < LEASE + 4, moved_after
    assert client.status(job).attempts == 2
    client.cancel(job)
    assert client.status(job).state in ("cancelled", "running")
    wait_for(lambda: client.status(job).state == "cancelled", 30, "the moved job to end")


def test_a_frozen_workers_job_runs_elsewhere_and_its_stale_run_is_stopped(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """SIGSTOP past the lease: another worker runs the job. After SIGCONT the
    frozen run learns it lost the job, stops, and its outcome is refused: the
    record shows one outcome, the new worker's; the old worker serves on."""
    env = {"SKILLQ_LEASE": str(LEASE)}
    shared, own = "leases-frozen", "leases-frozen-own"
    frozen = start_worker(pool="prefork", concurrency=1, queues=f"{shared},{own}", env=env)
    job = client.submit("sleepy", {"seconds": 3 * LEASE, "tick": 0.2}, queue=shared)
    wait_for(lambda: client.status(job).state == "running", 30, "the job to start")
    pids = frozen.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        other = start_worker(pool="threads", concurrency=1, queues=shared, env=env)
        wait_for(lambda: client.status(job).worker == other.hostname, 60, "the job to move")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: "the outcome of this run is dropped" in frozen.log_path.read_text(),
        30,
        "the frozen run to learn it lost the job",
    )
    result = client.result(job, timeout=120)
    assert result["slept"] >= 3 * LEASE
    status = client.status(job)
    assert status.state == "succeeded" and status.worker == other.hostname
    assert status.attempts == 2
    ended = [s for s in statuses(client, job) if s in ("succeeded", "failed", "cancelled")]
    assert ended == ["succeeded"]
    # The woken worker serves on.
    after = client.submit("echo", {"message": "still here"}, queue=own)
    assert client.result(after, timeout=60) == {"message": "still here"}
    assert client.status(after).worker == frozen.hostname


def test_workers_with_other_leases_never_take_each_others_jobs(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """Each delivery lapses by its holder's lease. Before: a worker with a 1 s
    lease swept up the jobs of a worker with a 30 s lease (renewed every 10 s)
    after 1 s, again and again, until they failed delivery_limit."""
    start_worker(pool="threads", concurrency=1, queues="leases-short", env={"SKILLQ_LEASE": "1"})
    patient = start_worker(
        pool="threads", concurrency=1, queues="leases-long", env={"SKILLQ_LEASE": "30"}
    )
    job = client.submit("sleepy", {"seconds": 12, "tick": 0.5}, queue="leases-long")
    assert client.result(job, timeout=120)["slept"] >= 12
    status = client.status(job)
    assert status.attempts == 1 and status.worker == patient.hostname
    assert statuses(client, job) == ["running", "succeeded"]


@pytest.mark.keeps_pool
def test_acknowledgements_leave_redis_at_idle_and_a_killed_worker_reruns_nothing(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, raw: redis.Redis
) -> None:
    # An acknowledgement waits to ride on the next take's script call; with
    # nothing more to take it goes by itself within milliseconds (the lease
    # keeper's last resort would take seconds). A worker whose main process
    # froze and was killed before acknowledging leaves its entries to come
    # back with the lease, to a START that finds each finished job done.
    env = {"SKILLQ_LEASE": str(LEASE)}
    queue = "leases-acks"
    first = start_worker(pool="threads", concurrency=2, queues=queue, env=env)
    jobs = [client.submit("echo", {"message": str(i)}, queue=queue) for i in range(20)]
    for i, job in enumerate(jobs):
        assert client.result(job, timeout=30) == {"message": str(i)}
    wait_for(lambda: not any(held(raw, job) for job in jobs), 1.5, "the releases at idle")
    doomed = start_worker(pool="prefork", concurrency=2, queues=queue, env=env)
    first.stop()
    more = [client.submit("story", {"words": 3, "delay": 0.05}, queue=queue) for _ in range(30)]
    wait_for(lambda: sum(client.status(j).finished for j in more) >= 4, 30, "some jobs to end")
    main, *children = doomed.pids()
    os.kill(main, signal.SIGSTOP)  # its children finish their jobs; nothing is acknowledged
    wait_for(
        lambda: not any(client.status(j).state == "running" for j in more), 30, "the runs to end"
    )
    for pid in (main, *children):
        os.kill(pid, signal.SIGKILL)
    start_worker(pool="threads", concurrency=2, queues=queue, env=env)
    for job in more:
        assert client.result(job, timeout=LEASE + 30)["words"] == 3
        assert statuses(client, job) == ["running", "succeeded"]
    wait_for(lambda: not any(held(raw, job) for job in more), 10, "every entry to go")


@pytest.mark.parametrize("stall", ["pause", "restart"])
def test_a_redis_wide_stall_takes_no_job_from_its_live_worker(
    start_worker: Callable[..., WorkerProcess], settings: Settings, stall: str
) -> None:
    """``CLIENT PAUSE ... ALL`` longer than the lease while a job runs: when it
    ends, every command queued meanwhile runs at once, another worker's sweep
    among them. Before: the sweep ran before any renewal and found the lease
    lapsed by Redis's clock, so the job was leased to the idle worker and ran
    twice at once. A lease lapses only against renewals that could have
    happened. The same across a restart (AOF on), where the workers'
    connections drop and Celery's consumer reconnects."""
    lease = 3.0
    with EmbeddedRedis(appendonly=True) as server:
        env = {
            "SKILLQ_LEASE": str(lease),
            "SKILLQ_BROKER_URL": server.url,
            "SKILLQ_REDIS_URL": server.url,
            "SKILLQ_RESULT_BACKEND": server.url,
        }
        own = settings.model_copy(
            update={"broker_url": server.url, "redis_url": server.url, "result_backend": server.url}
        )
        queue = "leases-stall"
        busy = start_worker(
            pool="prefork",
            concurrency=1,
            queues=queue,
            env=env,
            ready_url=server.url,
            ready_settings=own,
        )
        with SkillClient(own) as client:
            job = client.submit("sleepy", {"seconds": 4 * lease, "tick": 0.2}, queue=queue)
            wait_for(lambda: client.status(job).state == "running", 30, "the job to start")
            start_worker(
                pool="threads",
                concurrency=1,
                queues=queue,
                env=env,
                ready_url=server.url,
                ready_settings=own,
            )
            if stall == "pause":
                with redis.Redis.from_url(server.url) as admin:
                    admin.execute_command("CLIENT", "PAUSE", int(lease * 8 / 3 * 1000), "ALL")
            else:  # down for longer than a lease: three renewals fail
                server.stop()
                wait_for(
                    lambda: busy.log_tail(400).count("cannot renew the leases") >= 3,
                    30,
                    "renewals to fail for a lease",
                )
                server.start()
            assert client.result(job, timeout=120)["slept"] >= 4 * lease
            status = client.status(job)
            assert status.attempts == 1 and status.worker == busy.hostname, status
            assert statuses(client, job)[-1] == "succeeded"
            assert "DeliverySuperseded" not in busy.log_tail(400)
            assert "took this delivery over" not in busy.log_tail(400)

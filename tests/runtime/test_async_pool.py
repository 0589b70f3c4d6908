"""The async pool (``--pool async``): many jobs of one process on one event loop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.runtime.process import Engine, ProcessRuntime


def test_a_hundred_waiting_jobs_run_at_once_in_one_process(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(pool="async", concurrency=200, queues="async-many")
    began = time.monotonic()
    jobs = [
        client.submit("sleepy", {"seconds": 2, "tick": 0.5}, queue="async-many") for _ in range(100)
    ]
    for job in jobs:
        assert client.result(job, timeout=60)["slept"] >= 2
    # One after another they would take 200 s; all at once, about 2 s.
    assert time.monotonic() - began < 30
    assert {client.status(job).worker for job in jobs} == {worker.hostname}
    assert all(client.status(job).attempts == 1 for job in jobs)


def test_a_cancel_reaches_one_job_among_many(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    start_worker(pool="async", concurrency=50, queues="async-cancel")
    jobs = [
        client.submit("sleepy", {"seconds": 4, "tick": 0.05}, queue="async-cancel")
        for _ in range(20)
    ]
    wait_for(lambda: all(client.status(job).state == "running" for job in jobs), 30, "all to run")
    client.cancel(jobs[0])
    wait_for(lambda: client.status(jobs[0]).state == "cancelled", 10, "the cancel")
    for job in jobs[1:]:
        assert client.result(job, timeout=60)["slept"] >= 4


def test_a_handler_that_blocks_the_loop_is_named(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """A blocked loop stalls every job of the process: the worker says which
    job blocked it, for how long and where, and the other jobs still end."""
    worker = start_worker(pool="async", concurrency=10, queues="async-blocked")
    waiting = client.submit("sleepy", {"seconds": 1, "tick": 0.1}, queue="async-blocked")
    blocking = client.submit("blocker", {"seconds": 2}, queue="async-blocked")
    assert client.result(blocking, timeout=60) == "finished"
    assert client.result(waiting, timeout=60)["slept"] >= 1
    caught = f"blocked for 0.5 s by job {blocking} (skill 'blocker') at "
    wait_for(lambda: caught in worker.log_tail(400), 10, "the blocked loop reported")
    assert "ext_skills.py:" in worker.log_tail(400).split(caught, 1)[1].splitlines()[0]
    wait_for(
        lambda: "the event loop ran again after " in worker.log_tail(400),
        10,
        "the end of the block reported",
    )
    held = worker.log_tail(400).split("the event loop ran again after ", 1)[1]
    assert 1.5 <= float(held.split(" s ", 1)[0]) <= 5, held


def test_a_cancel_among_500_running_jobs_ends_that_one_at_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    start_worker(pool="async", concurrency=500, queues="async-500")
    jobs = [
        client.submit("sleepy", {"seconds": 8, "tick": 0.05}, queue="async-500") for _ in range(500)
    ]
    wait_for(
        lambda: all(client.status(job).state == "running" for job in jobs[-20:]),
        60,
        "the last jobs to run",
    )
    client.cancel(jobs[250])
    wait_for(lambda: client.status(jobs[250]).state == "cancelled", 10, "the cancel")
    others = [job for n, job in enumerate(jobs) if n != 250]
    for job in others:
        assert client.result(job, timeout=120)["slept"] >= 8
    assert client.status(jobs[250]).attempts == 1


def test_a_killed_process_holding_300_jobs_has_each_run_again_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    """SIGKILL of an async worker holding 300 running jobs: after their
    leases lapse another worker runs each once more, and each ends once."""
    env = {"SKILLQ_LEASE": "5"}
    doomed = start_worker(pool="async", concurrency=300, queues="async-kill", env=env)
    jobs = [
        client.submit("sleepy", {"seconds": 6, "tick": 0.5}, queue="async-kill") for _ in range(300)
    ]
    wait_for(lambda: all(client.status(job).state == "running" for job in jobs), 60, "all to run")
    assert doomed.process is not None
    os.kill(doomed.process.pid, signal.SIGKILL)
    survivor = start_worker(pool="async", concurrency=300, queues="async-kill", env=env)
    for job in jobs:
        assert client.result(job, timeout=120)["slept"] >= 6
        status = client.status(job)
        assert status.attempts == 2 and status.worker == survivor.hostname, status
        assert [e["payload"]["state"] for e in client.events(job) if e["kind"] == "status"][
            -1
        ] == "succeeded"


def test_a_runtime_that_failed_to_open_opens_at_the_next_job(settings: Settings) -> None:
    """A thread's runtime is kept before it opens (the async pool's other jobs
    wait for it); one whose open failed (Redis away at the subscribe, a
    capability factory that raised once) must not stay failed: before, every
    later job of the thread (of the process, in the async pool) raised."""
    attempts: list[int] = []

    def setup(runtime: ProcessRuntime) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("Redis went away at the subscribe")

    engine = Engine(settings, setup=setup)
    try:
        with pytest.raises(ConnectionError):
            engine.runtime()
        runtime = engine.runtime()  # the next job: opened again, and it works

        async def ping() -> bool:
            return bool(await runtime.redis.ping())

        assert runtime.call(ping())
        assert engine.runtime() is runtime and len(attempts) == 2
    finally:
        engine.close()

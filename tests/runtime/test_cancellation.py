"""Cancellation in every pool, from skillq and from Celery's own tooling."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from tests.conftest import held, unacknowledged, wait_for
from worker.client import SkillClient
from worker.core.errors import JobCancelled
from worker.core.settings import Settings
from worker.embedded import WorkerProcess


def celery_state(producer: Celery, job_id: str) -> str:
    state: str = AsyncResult(job_id, app=producer).state
    return state


def states(client: SkillClient, job_id: str) -> list[str]:
    return [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]


def start_running(client: SkillClient, skill: str, args: dict[str, Any]) -> str:
    job_id = client.submit(skill, args)
    wait_for(lambda: client.status(job_id).state == "running", 30, f"{skill} to start")
    return job_id


def assert_cancelled(
    client: SkillClient, producer: Celery, settings: Settings, job_id: str
) -> None:
    with pytest.raises(JobCancelled):
        client.result(job_id, timeout=30)
    status = client.status(job_id)
    assert status.state == "cancelled"
    assert status.attempts <= 1
    history = states(client, job_id)
    assert history[-1] == "cancelled"
    assert history.count("cancelled") == 1
    assert "retrying" not in history
    wait_for(lambda: celery_state(producer, job_id) == "REVOKED", 30, "Celery state REVOKED")
    raw = redis.Redis.from_url(settings.effective_redis_url)
    try:
        wait_for(lambda: not held(raw, job_id), 30, "the job's message to be acknowledged")
    except TimeoutError as exc:
        raise AssertionError(f"still unacknowledged: {unacknowledged(raw)}") from exc


def test_cancel_running_job_reaches_the_handler(
    worker: WorkerProcess, client: SkillClient, producer: Celery, settings: Settings
) -> None:
    job_id = start_running(client, "sleepy", {"seconds": 60, "tick": 0.001})
    assert client.cancel(job_id) is True
    assert_cancelled(client, producer, settings, job_id)
    assert client.cancel(job_id) is False


@pytest.mark.parametrize("how", ["celery-cli", "app-control"])
def test_celery_revoke_cancels_a_running_job(
    worker: WorkerProcess,
    client: SkillClient,
    producer: Celery,
    settings: Settings,
    stack_env: dict[str, str],
    how: str,
) -> None:
    job_id = start_running(client, "sleepy", {"seconds": 60})
    if how == "celery-cli":
        done = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "worker.app", "control", "revoke", job_id],
            env={**__import__("os").environ, **stack_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    else:
        producer.control.revoke(job_id)
    assert_cancelled(client, producer, settings, job_id)


def test_queued_job_never_starts(
    worker: WorkerProcess, client: SkillClient, producer: Celery, settings: Settings
) -> None:
    blockers = [start_running(client, "sleepy", {"seconds": 60}) for _ in range(2)]
    queued = client.submit("echo", {"message": "never"})
    assert client.status(queued).state == "queued"
    assert client.cancel(queued) is True
    assert client.status(queued).state == "cancelled"
    for job_id in blockers:
        client.cancel(job_id)
    assert_cancelled(client, producer, settings, queued)
    assert states(client, queued) == ["cancelled"]


def test_handler_that_never_checks_is_cancelled_after_the_grace_period(
    worker: WorkerProcess, client: SkillClient, producer: Celery, settings: Settings
) -> None:
    job_id = start_running(client, "stubborn", {"seconds": 60})
    client.cancel(job_id)
    assert_cancelled(client, producer, settings, job_id)


def test_handler_that_blocks_its_loop_is_stopped(
    worker: WorkerProcess, client: SkillClient, producer: Celery, settings: Settings
) -> None:
    job_id = start_running(client, "blocker", {"seconds": 8})
    client.cancel(job_id)
    with pytest.raises(JobCancelled):
        client.result(job_id, timeout=30)
    assert client.status(job_id).state == "cancelled"
    wait_for(lambda: celery_state(producer, job_id) == "REVOKED", 30, "Celery state REVOKED")
    follow_up = client.submit("echo", {"message": "alive"})
    assert client.result(follow_up, timeout=30) == {"message": "alive"}
    assert client.status(job_id).attempts == 1


@pytest.mark.keeps_pool
def test_a_handler_blocking_its_loop_stalls_no_other_job_of_its_process(
    worker: WorkerProcess, client: SkillClient
) -> None:
    # Threads: each pool thread runs its own loop, so the neighbour's job runs
    # and ends while the blocker still holds its thread (one shared loop would
    # hold the echo until the blocker returned).
    blocked = start_running(client, "blocker", {"seconds": 10})
    neighbour = client.submit("echo", {"message": "beside a blocked loop"})
    assert client.result(neighbour, timeout=8) == {"message": "beside a blocked loop"}
    assert client.status(blocked).state == "running"
    assert client.status(neighbour).worker == client.status(blocked).worker
    assert client.result(blocked, timeout=30) == "finished"


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_revoke_terminate_from_celery_tooling(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    producer: Celery,
    settings: Settings,
    pool: str,
) -> None:
    # prefork: Celery kills the child; threads cannot be killed, and the cancel
    # that skillq adds to every revoke reaches the handler instead.
    dedicated = start_worker(pool=pool, queues="terminate-q")
    job_id = client.submit("sleepy", {"seconds": 60}, queue="terminate-q")
    wait_for(lambda: client.status(job_id).state == "running", 30, "the job to start")
    producer.control.revoke(job_id, terminate=True, signal="SIGKILL")
    assert_cancelled(client, producer, settings, job_id)
    follow_up = client.submit("echo", {"message": "after terminate"}, queue="terminate-q")
    assert client.result(follow_up, timeout=30) == {"message": "after terminate"}
    dedicated.stop()


def test_cancel_holds_across_worker_restarts(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    producer: Celery,
    settings: Settings,
) -> None:
    job_id = client.submit("echo", {"message": "parked"}, queue="parked-q")
    assert client.cancel(job_id) is True
    late = start_worker(pool="threads", queues="parked-q")
    raw = redis.Redis.from_url(settings.effective_redis_url)
    wait_for(lambda: raw.llen("parked-q") == 0, 30, "the worker to take the message")
    assert_cancelled(client, producer, settings, job_id)
    assert states(client, job_id) == ["cancelled"]
    late.stop()


def test_cancel_in_the_solo_pool(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    producer: Celery,
    settings: Settings,
) -> None:
    """The solo pool runs the job in the consumer's thread; the cancel arrives over pub/sub."""
    solo = start_worker(pool="solo", concurrency=1, queues="solo-cancel")
    job_id = client.submit("sleepy", {"seconds": 60}, queue="solo-cancel")
    wait_for(lambda: client.status(job_id).state == "running", 30, "the job to start")
    assert client.cancel(job_id) is True
    assert_cancelled(client, producer, settings, job_id)
    follow_up = client.submit("echo", {"message": "solo"}, queue="solo-cancel")
    assert client.result(follow_up, timeout=30) == {"message": "solo"}
    solo.stop()

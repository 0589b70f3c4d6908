"""Priorities on a real, busy worker: a priority-9 job queued behind twenty
priority-0 jobs runs before most of them, whether skillq's client or a plain
Celery producer sent it, and the backlog counts every priority's list."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker.client import SkillClient
from worker.client.backlog import queue_depths
from worker.core.errors import InvalidArgs, JobNotFound
from worker.embedded import WorkerProcess
from worker.store.keys import Keys


@pytest.fixture(scope="module")
def single(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    process = start_worker(
        pool="prefork", concurrency=1, queues="prio", env={"SKILLQ_SKILLS": "limit_skills"}
    )
    yield process
    process.stop(timeout=10)


def finished(client: SkillClient, job: str) -> bool:
    try:
        return client.status(job).finished
    except JobNotFound:  # a plain producer's job is recorded when it starts
        return False


def started_order(client: SkillClient, jobs: list[str]) -> list[str]:
    wait_for(lambda: all(finished(client, job) for job in jobs), timeout=60, what="the jobs")
    starts = {job: client.status(job).started_at or 0.0 for job in jobs}
    return sorted(jobs, key=lambda job: starts[job])


def busy(client: SkillClient, tmp_path: Path) -> tuple[str, Path]:
    """A job that holds the only pool slot until the returned gate exists."""
    gate = tmp_path / f"gate-{uuid.uuid4().hex}"
    holder = client.submit("hold", {"gate": str(gate)})
    wait_for(lambda: client.status(holder).state == "running", timeout=30, what="the hold job")
    return holder, gate


def test_a_priority_9_job_overtakes_twenty_priority_0_jobs(
    single: WorkerProcess, client: SkillClient, tmp_path: Path, raw: redis.Redis
) -> None:
    holder, gate = busy(client, tmp_path)
    low = [client.submit("note", {"n": n}, priority=0) for n in range(20)]
    urgent = client.submit("note", {"n": "urgent"}, priority=9)
    assert client.status(urgent).priority == 9
    depth = queue_depths(raw, raw, Keys("skillq"), ["prio"])[0]
    assert depth.queued >= 20  # the priority-9 list is counted with the rest
    gate.touch()
    order = started_order(client, [holder, *low, urgent])
    # One priority-0 job may already be prefetched by the busy worker.
    assert order.index(urgent) <= 2, order.index(urgent)


def test_a_plain_producers_priority_means_the_same(
    single: WorkerProcess, client: SkillClient, tmp_path: Path, producer: Celery
) -> None:
    holder, gate = busy(client, tmp_path)
    low = [client.submit("note", {"n": n}) for n in range(10)]
    urgent = str(uuid.uuid4())
    producer.send_task("skills.note", kwargs={"args": {}}, task_id=urgent, queue="prio", priority=9)
    # A plain producer's unprioritised job is 0: it waits behind a priority-5 one.
    plain = str(uuid.uuid4())
    producer.send_task("skills.note", kwargs={"args": {}}, task_id=plain, queue="prio")
    middle = client.submit("note", {}, priority=5)
    gate.touch()
    order = started_order(client, [holder, *low, urgent, middle, plain])
    assert order.index(urgent) <= 2
    assert order.index(middle) <= 3
    assert order.index(plain) > order.index(middle)


@pytest.mark.parametrize("priority", [-1, 10, 2.5, True, "9"])
def test_priorities_outside_0_to_9_are_refused(
    single: WorkerProcess, client: SkillClient, priority: object
) -> None:
    with pytest.raises(InvalidArgs, match="priority must be an integer from 0 to 9"):
        client.submit("note", {}, priority=priority)  # type: ignore[arg-type]


def test_the_cli_submits_with_a_priority(
    single: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    done = skillq(stack_env, "submit", "note", "--priority", "7", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["job_id"]
    assert client.status(job).priority == 7
    wait_for(lambda: finished(client, job), timeout=60, what="the job")
    shown = skillq(stack_env, "status", job)
    assert "priority" in shown.stdout and "7" in shown.stdout
    refused = skillq(stack_env, "submit", "note", "--priority", "10")
    assert refused.returncode == 2

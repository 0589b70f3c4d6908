"""Listing jobs and idempotency keys on real Redis and workers: the indexes the
scripts keep answer pages newest first, including jobs a plain Celery
producer queued, and running jobs exactly."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker.client import SkillClient
from worker.embedded import WorkerProcess

QUEUE = "listing"


@pytest.fixture(scope="module")
def lister(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    # A queue of its own: whatever other modules left queued cannot occupy it.
    process = start_worker(pool="threads", concurrency=3, queues=QUEUE)
    yield process
    process.stop(timeout=10)


def running_now(raw: redis.Redis) -> set[str]:
    """The truth, the slow way a test may take: every record whose state is running."""
    found = set()
    for key in raw.scan_iter("skillq:job:*", count=1000):
        if raw.hget(key, "state") == b"running":
            found.add(key.decode().removeprefix("skillq:job:"))
    return found


def test_the_same_idempotency_key_makes_one_job(lister: WorkerProcess, client: SkillClient) -> None:
    key = f"order-{uuid.uuid4().hex}"
    first = client.submit("echo", {"message": "once"}, idempotency_key=key, queue=QUEUE)
    second = client.submit("echo", {"message": "twice?"}, idempotency_key=key, queue=QUEUE)
    assert first == second
    other = client.submit("echo", {"message": "other"}, idempotency_key=key + "-b", queue=QUEUE)
    assert other != first
    assert client.result(first, timeout=30) == {"message": "once"}
    since = client.status(first).created_at
    assert since is not None
    listed = [job.id for job in client.jobs(skill="echo", since=since - 0.001, limit=100).jobs]
    assert listed.count(first) == 1 and other in listed
    with pytest.raises(Exception, match="idempotency key"):
        client.submit("echo", {}, idempotency_key="bad\nkey", queue=QUEUE)


def test_jobs_list_newest_first_in_pages(
    lister: WorkerProcess, client: SkillClient, producer: Celery
) -> None:
    since = time.time()
    made = [client.submit("echo", {"message": str(n)}, queue=QUEUE) for n in range(7)]
    raw_id = str(uuid.uuid4())
    producer.send_task(
        "skills.echo", kwargs={"args": {"message": "raw"}}, task_id=raw_id, queue=QUEUE
    )
    wait_for(lambda: client.status(raw_id).finished if _exists(client, raw_id) else False, 30)
    for job in made:
        client.result(job, timeout=30)
    seen: list[str] = []
    cursor = None
    while True:
        page = client.jobs(skill="echo", since=since, limit=3, cursor=cursor)
        seen += [job.id for job in page.jobs]
        assert all(job.skill == "echo" for job in page.jobs)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert set(made) | {raw_id} == set(seen) and len(seen) == len(set(seen))
    assert seen.index(made[-1]) < seen.index(made[0])  # newest first
    everything = client.jobs(since=since, limit=100).jobs
    assert {job.id for job in everything} >= set(made)
    succeeded = client.jobs(since=since, state="succeeded", limit=100).jobs
    assert {job.id for job in succeeded} >= set(made) and all(
        job.state == "succeeded" for job in succeeded
    )
    assert client.jobs(since=time.time() + 60).jobs == []


def _exists(client: SkillClient, job_id: str) -> bool:
    try:
        client.status(job_id)
    except Exception:
        return False
    return True


def test_jobs_state_running_lists_exactly_the_running_jobs(
    lister: WorkerProcess, client: SkillClient, stack_env: dict[str, str], raw: redis.Redis
) -> None:
    sleepers = [client.submit("sleepy", {"seconds": 60}, queue=QUEUE) for _ in range(3)]
    waiting = client.submit("sleepy", {"seconds": 60}, queue=QUEUE)  # -c 3: this one stays queued
    wait_for(lambda: all(client.status(job).state == "running" for job in sleepers), 30)
    try:
        done = skillq(stack_env, "jobs", "--state", "running", "--json", "--limit", "1000")
        assert done.returncode == 0, done.stderr
        listed = {job["id"] for job in json.loads(done.stdout)["jobs"]}
        assert listed == running_now(raw)
        assert set(sleepers) <= listed and waiting not in listed
    finally:
        # The queued one first: a cancelled sleeper frees the slot it would take.
        for job in [waiting, *sleepers]:
            client.cancel(job)
    wait_for(lambda: not (set(sleepers) & {j.id for j in client.jobs(state="running").jobs}), 30)
    assert client.status(waiting).state == "cancelled"

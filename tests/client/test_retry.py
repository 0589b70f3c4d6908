"""Retrying an ended job by hand on real workers: a new job with the same skill,
args, queue and priority, linked both ways; refused while the job runs and for
a job whose args only its message held; the same from the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker import JobNotFound, NotRetryable
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.embedded import WorkerProcess

HOSTILE = {"message": "<img src=x onerror=alert(1)>\u2028 \U0001f600 " + "x" * 2000}


@pytest.fixture(scope="module")
def retry_worker(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    """Stopped with the module: a worker left on ``default`` would take other
    modules' jobs."""
    worker = start_worker(pool="threads", concurrency=2, queues="default,ext,retry-q")
    yield worker
    worker.stop(timeout=10)


def test_a_failed_job_retried_is_a_new_job_linked_both_ways(
    retry_worker: WorkerProcess, client: SkillClient
) -> None:
    first = client.submit("boom", {"why": [1, 2.5, None]}, queue="retry-q", priority=7)
    with pytest.raises(JobFailed):
        client.result(first, timeout=30)
    again = client.retry(first)
    assert again != first
    with pytest.raises(JobFailed):
        client.result(again, timeout=30)
    old, new = client.status(first), client.status(again)
    assert new.retry_of == first and old.retried_by == [again]
    assert new.args == old.args == {"why": [1, 2.5, None]}
    assert (new.skill, new.queue, new.priority) == ("boom", "retry-q", 7)
    assert old.state == "failed" and old.error is not None  # the first run stays as it was
    third = client.retry(first)
    assert client.status(first).retried_by == [again, third]


def test_a_succeeded_job_runs_again_with_the_same_args(
    retry_worker: WorkerProcess, client: SkillClient
) -> None:
    first = client.submit("echo", HOSTILE)
    assert client.result(first, timeout=30) == HOSTILE
    again = client.retry(first)
    assert client.result(again, timeout=30) == HOSTILE


def test_what_cannot_be_retried_is_refused_with_the_reason(
    retry_worker: WorkerProcess, client: SkillClient, producer: Celery
) -> None:
    running = client.submit("sleepy", {"seconds": 30})
    wait_for(lambda: client.status(running).state == "running", 30, "the job to run")
    with pytest.raises(NotRetryable, match="running; cancel it first"):
        client.retry(running)
    assert client.status(running).retried_by == []
    client.cancel(running)
    plain = producer.send_task("skills.echo", kwargs={"args": {"message": "plain"}}).id
    wait_for(lambda: client.jobs(limit=20).jobs[0].id == plain, 30, "the plain job's record")
    assert client.result(plain, timeout=30) == {"message": "plain"}
    with pytest.raises(NotRetryable, match="args were not kept"):
        client.retry(plain)
    with pytest.raises(JobNotFound):
        client.retry("no-such-job")


def test_the_cli_retries_and_says_why_not(
    retry_worker: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    first = client.submit("echo", {"message": "cli retry"})
    client.result(first, timeout=30)
    done = skillq(stack_env, "retry", first, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == {"message": "cli retry"}
    assert len(client.status(first).retried_by) == 1
    running = client.submit("sleepy", {"seconds": 30})
    wait_for(lambda: client.status(running).state == "running", 30, "the job to run")
    refused = skillq(stack_env, "retry", running)
    assert refused.returncode == 2 and "cancel it first" in refused.stderr
    client.cancel(running)

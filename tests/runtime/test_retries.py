"""Retries with backoff on real workers: a flaky handler succeeds on a later
attempt, a hopeless one ends failed with every attempt's error, a cancel during
the backoff ends the job at once, and what cannot be fixed is never retried."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.conftest import held, parked, wait_for
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import WorkerProcess


@pytest.fixture(scope="module", params=["prefork", "threads"])
def retrier(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess]
) -> Iterator[WorkerProcess]:
    process = start_worker(
        pool=request.param, concurrency=2, queues="retry", env={"SKILLQ_SKILLS": "retry_skills"}
    )
    yield process
    process.stop(timeout=10)


def marker(tmp_path: Path) -> str:
    return str(tmp_path / f"attempts-{uuid.uuid4().hex}")


def times(path: str) -> list[float]:
    return [float(line) for line in Path(path).read_text().splitlines()]


def test_a_flaky_handler_succeeds_on_its_third_attempt(
    retrier: WorkerProcess, client: SkillClient, tmp_path: Path
) -> None:
    path = marker(tmp_path)
    job = client.submit("flaky", {"marker": path, "fail_times": 2})
    assert client.result(job, timeout=60) == 3
    started = times(path)
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert len(gaps) == 2
    assert 0.45 <= gaps[0] < 3.0 and 0.95 <= gaps[1] < 4.0, gaps  # backoff 0.5 s, then 1 s
    status = client.status(job)
    assert status.state == "succeeded" and status.retries == 2 and status.error is None
    assert [error.message for error in status.errors] == [
        "attempt 1 failed on purpose",
        "attempt 2 failed on purpose",
    ]
    retrying = [e["payload"] for e in client.events(job) if e["payload"].get("state") == "retrying"]
    assert [item["attempt"] for item in retrying] == [2, 3]
    assert all(
        item["next_run_at"] > 0 and "failed on purpose" in item["error"]["message"]
        for item in retrying
    )


def test_a_hopeless_handler_fails_after_every_attempt_with_every_error(
    retrier: WorkerProcess, client: SkillClient, tmp_path: Path
) -> None:
    path = marker(tmp_path)
    job = client.submit("hopeless", {"marker": path})
    with pytest.raises(JobFailed, match="attempt 4 failed"):
        client.result(job, timeout=60)
    status = client.status(job)
    assert status.state == "failed" and status.retries == 3 and len(times(path)) == 4
    assert [error.message for error in status.errors] == [
        f"attempt {n} failed, as they all do" for n in (1, 2, 3)
    ]


def test_cancelling_during_the_backoff_ends_the_job_and_it_never_runs_again(
    retrier: WorkerProcess, client: SkillClient, tmp_path: Path, raw: redis.Redis
) -> None:
    path = marker(tmp_path)
    job = client.submit("patient", {"marker": path})
    wait_for(lambda: client.status(job).state == "retrying", timeout=30, what="the backoff")
    assert client.status(job).next_run_at is not None
    assert client.cancel(job)
    assert client.status(job).state == "cancelled"  # at once, not at the next attempt
    # The retry's message comes due 3 s later and is taken off the queue: nothing runs.
    wait_for(lambda: not held(raw, job), timeout=30, what="the retry message to be handled")
    assert len(times(path)) == 1 and client.status(job).state == "cancelled"


def test_what_no_attempt_can_fix_is_never_retried(
    retrier: WorkerProcess,
    client: SkillClient,
    tmp_path: Path,
    producer: Celery,
    raw: redis.Redis,
) -> None:
    path = marker(tmp_path)
    job = client.submit("picky", {"marker": path})
    with pytest.raises(JobFailed, match="never retried"):
        client.result(job, timeout=60)
    assert len(times(path)) == 1 and client.status(job).retries == 0
    # Invalid args reach a worker only from a producer that skips the client's checks.
    invalid = str(uuid.uuid4())
    producer.send_task(
        "skills.flaky", kwargs={"args": {"marker": 5}}, task_id=invalid, queue="retry"
    )
    wait_for(lambda: raw.exists(f"skillq:job:{invalid}") and client.status(invalid).finished, 30)
    status = client.status(invalid)
    assert status.error is not None and status.error.code == "invalid_args"
    assert status.retries == 0 and status.attempts == 1


def test_an_inline_child_retries_inline(
    retrier: WorkerProcess, client: SkillClient, tmp_path: Path
) -> None:
    path = marker(tmp_path)
    job = client.submit("calls_flaky", {"marker": path, "fail_times": 2})
    outcome = client.result(job, timeout=60)
    assert outcome["ok"] is True and outcome["output"] == 3
    child = client.status(outcome["child"])
    assert child.parent == job and child.state == "succeeded"
    assert child.retries == 2 and len(child.errors) == 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(times(path))]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps  # the backoff, waited on the loop
    assert client.status(job).worker == child.worker  # the caller's process ran it


def test_a_backoff_longer_than_the_lease_waits_in_redis_and_runs_once(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    tmp_path: Path,
    raw: redis.Redis,
) -> None:
    """Before: a retry waited in the worker's memory, unacknowledged, and one that
    waited longer than the visibility timeout was delivered to a second worker as
    well (and workers refused such a backoff). Now the retry waits in Redis: two
    workers with a 1 s lease, a 3 s backoff, and the job runs twice in all."""
    env = {"SKILLQ_SKILLS": "retry_skills", "SKILLQ_LEASE": "1"}
    for _ in range(2):
        start_worker(pool="threads", concurrency=1, queues="retry-long", env=env)
    path = marker(tmp_path)
    job = client.submit("slow_flaky", {"marker": path, "fail_times": 1}, queue="retry-long")
    wait_for(lambda: parked(raw, job), timeout=30, what="the retry to wait in Redis")
    assert client.result(job, timeout=60) == 2
    started = times(path)
    assert len(started) == 2 and 3.0 <= started[1] - started[0] < 5.0, started
    status = client.status(job)
    assert status.attempts == 2 and status.retries == 1 and not parked(raw, job)


def test_a_signed_retry_after_its_signatures_life_still_runs(
    retrier: WorkerProcess, settings: Settings, tmp_path: Path
) -> None:
    """The worker renews a call's signature when it puts the call back to wait
    (a backoff, a limit): before, a retry due after SKILLQ_AUTH_TTL failed
    invalid_auth."""
    path = marker(tmp_path)
    with SkillClient(settings.model_copy(update={"auth_ttl": 2})) as client:
        job = client.submit("slow_flaky", {"marker": path, "fail_times": 1})
        assert client.result(job, timeout=60) == 2
        assert client.status(job).attempts == 2

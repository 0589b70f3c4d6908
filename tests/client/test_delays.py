"""Delayed jobs on real workers: ``queued`` with their eta from the moment they
are submitted (also from a plain Celery producer's countdown), cancellable
before they run, run on time otherwise, held in Redis whatever their length
(also while no worker is up); delays that are not times are refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery import Celery

from tests.cli.test_cli import skillq
from tests.conftest import held, parked, unacknowledged, wait_for
from worker.client import SkillClient
from worker.core.errors import InvalidArgs, JobNotFound
from worker.core.settings import Settings
from worker.embedded import WorkerProcess


@pytest.fixture(scope="module")
def delayer(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    process = start_worker(pool="prefork", concurrency=2, queues="default")
    yield process
    process.stop(timeout=10)


def test_a_countdown_job_is_queued_with_its_eta_and_runs_on_time(
    delayer: WorkerProcess, client: SkillClient
) -> None:
    before = time.time()
    job = client.submit("echo", {"message": "later"}, countdown=2)
    status = client.status(job)
    assert status.state == "queued" and status.eta is not None
    assert before + 1.9 <= status.eta <= time.time() + 2.1
    assert list(client.events(job, follow=False)) == []  # events work before it runs
    assert client.result(job, timeout=60) == {"message": "later"}
    started = client.status(job).started_at
    assert started is not None and started >= status.eta - 0.05


def test_an_eta_job_is_cancelled_before_it_runs_and_never_runs(
    delayer: WorkerProcess, client: SkillClient, raw: redis.Redis
) -> None:
    job = client.submit("echo", {"message": "never"}, eta=datetime.now(UTC) + timedelta(seconds=3))
    assert client.status(job).state == "queued"
    assert client.cancel(job)
    assert client.status(job).state == "cancelled"
    wait_for(lambda: not held(raw, job), timeout=30, what="the delayed message to be handled")
    status = client.status(job)
    assert status.state == "cancelled" and status.started_at is None and status.attempts == 0


def test_a_plain_producers_countdown_is_recorded_when_a_worker_receives_it(
    delayer: WorkerProcess, client: SkillClient, producer: Celery
) -> None:
    job = str(uuid.uuid4())
    producer.send_task("skills.echo", kwargs={"args": {"message": "raw"}}, task_id=job, countdown=3)

    def recorded() -> bool:
        try:
            return client.status(job).state == "queued"
        except JobNotFound:
            return False

    wait_for(recorded, timeout=10, what="the worker to record the delayed job")
    status = client.status(job)
    assert status.eta is not None and status.eta > time.time()  # well before it runs
    assert client.result(job, timeout=60) == {"message": "raw"}


def test_delays_that_cannot_be_held_are_refused(
    delayer: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgs, match="at most ten years"):
        client.submit("echo", {"message": "x"}, countdown=11 * 366 * 86400)
    with pytest.raises(InvalidArgs, match="not both"):
        client.submit("echo", {}, countdown=1, eta=time.time() + 1)
    # Not numbers a delay can be: before, NaN reached Redis as a plain ValueError.
    for bad in (float("nan"), float("inf"), 10**400):
        with pytest.raises(InvalidArgs, match="eta must be"):
            client.submit("echo", {"message": "x"}, eta=bad)
        with pytest.raises(InvalidArgs, match="countdown must be"):
            client.submit("echo", {"message": "x"}, countdown=bad)
    with pytest.raises(InvalidArgs, match="lone surrogate"):
        client.submit("echo", {"message": "\ud800"})
    done = skillq(
        stack_env,
        "submit",
        "echo",
        "--args",
        '{"message": "cli"}',
        "--countdown",
        "1",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr


def test_a_two_day_countdown_is_accepted_listed_and_cancelled(
    delayer: WorkerProcess, client: SkillClient, raw: redis.Redis
) -> None:
    """Before: refused, a delay over the visibility timeout (an hour) less a minute."""
    job = client.submit("echo", {"message": "in two days"}, countdown=2 * 86400)
    status = client.status(job)
    assert status.state == "queued" and status.eta is not None
    assert status.eta > time.time() + 2 * 86400 - 60
    listed = client.jobs(skill="echo", state="queued", limit=50).jobs
    assert job in [j.id for j in listed]
    wait_for(lambda: parked(raw, job), timeout=30, what="a worker to park it in Redis")
    assert not any(held_id == job for _, held_id in unacknowledged(raw)), "no worker holds it"
    assert client.cancel(job)
    assert client.status(job).state == "cancelled"


def test_a_countdown_survives_every_worker_stopping_and_runs_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, raw: redis.Redis
) -> None:
    queue = "delays-restart"
    first = start_worker(pool="threads", concurrency=1, queues=queue)
    job = client.submit("echo", {"message": "after a restart"}, countdown=5, queue=queue)
    eta = client.status(job).eta
    assert eta is not None
    wait_for(lambda: parked(raw, job), timeout=30, what="the worker to park it")
    first.stop()
    wait_for(lambda: time.time() > eta + 1, timeout=30, what="the eta to pass with no worker up")
    assert client.status(job).state == "queued"
    start_worker(pool="threads", concurrency=1, queues=queue)
    assert client.result(job, timeout=60) == {"message": "after a restart"}
    assert client.status(job).attempts == 1
    wait_for(lambda: not held(raw, job), timeout=30, what="its message to be acknowledged")


def test_a_countdown_starts_within_a_second_of_its_eta(
    delayer: WorkerProcess, client: SkillClient
) -> None:
    submitted = time.time()
    job = client.submit("echo", {"message": "soon"}, countdown=3)
    assert client.result(job, timeout=60) == {"message": "soon"}
    started = client.status(job).started_at
    assert started is not None and 3.0 <= started - submitted < 4.0, (started, submitted)


def test_a_signed_job_delayed_past_its_signatures_life_still_runs(
    delayer: WorkerProcess, settings: Settings
) -> None:
    """Before: the signature lived SKILLQ_AUTH_TTL from the submit, so a job
    delayed longer failed invalid_auth ("signed auth expired") when it ran."""
    short = settings.model_copy(update={"auth_ttl": 2})
    assert short.auth_secret is not None, "the test stack signs its calls"
    with SkillClient(short) as client:
        job = client.submit("echo", {"message": "signed, later"}, countdown=4)
        assert client.result(job, timeout=60) == {"message": "signed, later"}


def test_an_eta_in_the_past_starts_at_once_however_far_back(
    delayer: WorkerProcess, client: SkillClient
) -> None:
    """Before: an eta of -1.6e237 (found by schemathesis over HTTP) overflowed
    the date conversion and answered 500."""
    for past in (-1.6e237, -1e18, 0, time.time() - 3600):
        job = client.submit("echo", {"message": "late"}, eta=past)
        eta = client.status(job).eta
        assert eta is not None and eta >= time.time() - 60
        assert client.result(job, timeout=60) == {"message": "late"}

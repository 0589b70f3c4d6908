"""Faults: killed workers, Redis restarts, S3 outages, time limits, signed auth."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import SecretStr

from tests.conftest import BUCKET, wait_for
from worker.app import create_app
from worker.client import SkillClient
from worker.core.errors import InvalidArgs, JobFailed, JobNotFound
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, S3Server, WorkerProcess
from worker.wire.signing import sign

QUEUE = "faults"


def statuses(client: SkillClient, job_id: str) -> list[str]:
    return [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]


def reported_pid(client: SkillClient, job_id: str) -> int:
    def find() -> int | None:
        for event in client.events(job_id, follow=False):
            message = event["payload"].get("message", "") if event["kind"] == "progress" else ""
            if message.startswith("pid "):
                return int(message.split()[1])
        return None

    pid = wait_for(find, 30, "the handler to report its pid")
    assert pid is not None
    return pid


def objects_under(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def assert_redelivered_once(client: SkillClient, s3: Any, job_id: str) -> None:
    assert isinstance(client.result(job_id, timeout=60), int)
    status = client.status(job_id)
    assert status.state == "succeeded"
    assert status.attempts == 2
    assert statuses(client, job_id) == ["running", "retrying", "running", "succeeded"]
    assert objects_under(s3, f"artifacts/{job_id}/") == [f"artifacts/{job_id}/out/result.txt"]
    assert [a.name for a in status.artifacts] == ["out/result.txt"]


@pytest.mark.keeps_pool
def test_killed_prefork_child_job_is_redelivered(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, s3: Any, tmp_path: Path
) -> None:
    worker = start_worker(pool="prefork", concurrency=2, queues=QUEUE)
    gate = tmp_path / "gate"
    job_id = client.submit("fragile", {"seconds": 0, "gate": str(gate)}, queue=QUEUE)
    child = reported_pid(client, job_id)
    assert child in worker.pids() and child != worker.process.pid  # type: ignore[union-attr]
    os.kill(child, signal.SIGKILL)
    gate.touch()  # the redelivered attempt may finish
    assert_redelivered_once(client, s3, job_id)
    worker.stop()


def test_killed_worker_job_completes_on_another_within_its_lease(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, s3: Any, tmp_path: Path
) -> None:
    fast_restore = {"SKILLQ_LEASE": "3"}
    doomed = start_worker(pool="prefork", concurrency=1, queues=QUEUE, env=fast_restore)
    gate = tmp_path / "gate"
    job_id = client.submit("fragile", {"seconds": 0, "gate": str(gate)}, queue=QUEUE)
    reported_pid(client, job_id)
    assert client.status(job_id).worker == doomed.hostname
    # The job cannot finish on the doomed worker: it waits for the gate, which
    # opens only once that worker is dead, however long the survivor takes to start.
    survivor = start_worker(pool="threads", concurrency=2, queues=QUEUE, env=fast_restore)
    for pid in doomed.pids():
        os.kill(pid, signal.SIGKILL)
    gate.touch()
    assert_redelivered_once(client, s3, job_id)
    assert client.status(job_id).worker == survivor.hostname
    survivor.stop()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=True, directory=tmp_path / "redis") as server:
        yield server


def test_redis_restart_loses_nothing(
    restartable_redis: EmbeddedRedis,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
) -> None:
    env = {"SKILLQ_BROKER_URL": restartable_redis.url}
    local = settings.model_copy(update={"broker_url": restartable_redis.url})
    worker = start_worker(
        pool="prefork", concurrency=2, queues="default", env=env, ready_url=restartable_redis.url
    )
    with SkillClient(local) as client:
        running = client.submit("story", {"words": 60, "delay": 0.05})
        wait_for(lambda: client.status(running).last_seq >= 5, 20, "the job to stream")
        parked = client.submit("echo", {"message": "parked"}, queue="parked")
        restartable_redis.restart()
        assert client.result(running, timeout=60)["words"] == 60
        events = list(client.events(running, timeout=30))
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert sum(1 for e in events if e["kind"] == "text_delta") == 60
        assert client.status(parked).state == "queued"
        late = start_worker(
            pool="threads", queues="parked", env=env, ready_url=restartable_redis.url
        )
        assert client.result(parked, timeout=60) == {"message": "parked"}
        after = client.submit("echo", {"message": "after restart"})
        assert client.result(after, timeout=60) == {"message": "after restart"}
        late.stop()
        # The running job's message was acknowledged through a new connection:
        # nothing is left to be redelivered (and so run twice) later.
        raw = redis.Redis.from_url(restartable_redis.url)
        wait_for(lambda: raw.hlen("unacked") == 0, 20, "every message to be acknowledged")
        assert client.status(running).attempts == 1
    worker.stop()


def test_a_delayed_message_popped_as_redis_goes_away_is_parked_once_it_returns(
    restartable_redis: EmbeddedRedis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The transport pops a message off its list, then parks it in Redis when
    # its eta is ahead; in between, the message is only in the worker's memory.
    # Before, a Redis that went away then lost it (a job waiting for input was
    # never woken: the asks restart test failed so in CI). The park is now
    # retried through the outage, as the take is.
    import threading

    from worker.interface.skills import load_skills
    from worker.store.keys import Keys
    from worker.wire.celery_app import configured_app

    local = settings.model_copy(update={"broker_url": restartable_redis.url})
    app = configured_app(local, load_skills(["tasks"]), consuming=True)
    raw = redis.Redis.from_url(restartable_redis.url)
    app.send_task("skills.echo", kwargs={"args": {"message": "later"}}, countdown=3600)
    item = raw.rpop("default")
    assert item is not None
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel
        raw.ping()  # the channel's pool has a connection to lose
        restartable_redis.stop()
        outcome: list[Any] = []

        def pop() -> None:
            try:
                outcome.append(channel._checked(item, "default"))
            except Exception as exc:  # what the consumer would have raised
                outcome.append(exc)

        popped = threading.Thread(target=pop)
        popped.start()
        wait_for(
            lambda: "unreachable while parking" in caplog.text or not popped.is_alive(),
            10,
            "the park to find Redis gone",
        )
        restartable_redis.start()
        popped.join(timeout=60)
    assert outcome == [None], outcome  # parked, not delivered and not lost
    assert raw.zcard(Keys(local.key_prefix).delayed) == 1


def test_live_events_resume_across_a_redis_restart(
    restartable_redis: EmbeddedRedis,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
) -> None:
    env = {"SKILLQ_BROKER_URL": restartable_redis.url}
    local = settings.model_copy(update={"broker_url": restartable_redis.url})
    worker = start_worker(
        pool="threads", concurrency=2, queues="default", env=env, ready_url=restartable_redis.url
    )
    with SkillClient(local) as client:
        job_id = client.submit("story", {"words": 80, "delay": 0.03})
        seen: list[int] = []
        for event in client.events(job_id, timeout=60):
            seen.append(event["seq"])
            if len(seen) == 10:
                restartable_redis.restart()
        assert seen == list(range(1, len(seen) + 1))
        assert client.status(job_id).state == "succeeded"
    worker.stop()


def test_s3_outage_fails_the_job_clearly_and_the_worker_serves_on(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    with S3Server() as outage:
        import boto3

        # The bucket exists, so the worker starts (it refuses a store it can never use).
        boto3.client("s3", endpoint_url=outage.url).create_bucket(Bucket=BUCKET)
        worker = start_worker(
            pool="threads", queues="s3-down", env={"SKILLQ_S3_ENDPOINT_URL": outage.url}
        )
    job_id = client.submit("report", {}, queue="s3-down")
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=120)
    assert caught.value.error_type == "ArtifactStoreUnavailable"
    assert "artifact store unavailable" in caught.value.error_message
    follow_up = client.submit("echo", {"message": "no S3 needed"}, queue="s3-down")
    assert client.result(follow_up, timeout=30) == {"message": "no S3 needed"}
    worker.stop()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_time_limit_fails_the_job_and_the_worker_recovers(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, pool: str
) -> None:
    worker = start_worker(pool=pool, queues=f"limits-{pool}")
    job_id = client.submit("limited", {"seconds": 30}, queue=f"limits-{pool}")
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=30)
    assert caught.value.error_type == "JobTimeout"
    assert "time limit of 0.5 s" in caught.value.error_message
    follow_up = client.submit("echo", {"message": "recovered"}, queue=f"limits-{pool}")
    assert client.result(follow_up, timeout=30) == {"message": "recovered"}
    worker.stop()


@pytest.mark.keeps_pool
def test_hard_time_limit_stops_a_handler_that_blocks_its_loop(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(pool="prefork", queues="hard-limit")
    job_id = client.submit("blocking_limited", {"seconds": 60}, queue="hard-limit")
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=60)
    assert caught.value.error_type == "JobTimeout"
    follow_up = client.submit("echo", {"message": "recovered"}, queue="hard-limit")
    assert client.result(follow_up, timeout=30) == {"message": "recovered"}
    worker.stop()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_time_limit_given_at_submit_ends_the_job_and_never_lifts_the_skills(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, pool: str
) -> None:
    queue = f"submit-limits-{pool}"
    worker = start_worker(pool=pool, queues=queue)
    job_id = client.submit("sleepy", {"seconds": 60}, queue=queue, time_limit=0.5)
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=30)
    assert caught.value.error_type == "JobTimeout" and caught.value.code == "timeout"
    assert "time limit of 0.5 s" in caught.value.error_message
    # A longer one does not lift the skill's own 0.5 s.
    capped = client.submit("limited", {"seconds": 30}, queue=queue, time_limit=120)
    with pytest.raises(JobFailed, match=r"time limit of 0\.5 s"):
        client.result(capped, timeout=30)
    # A limit the job stays within changes nothing.
    fine = client.submit("sleepy", {"seconds": 0.1}, queue=queue, time_limit=30)
    assert client.result(fine, timeout=30)["slept"] >= 0.1
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InvalidArgs, match="time_limit"):
            client.submit("sleepy", {"seconds": 1}, queue=queue, time_limit=bad)
    worker.stop()


@pytest.mark.keeps_pool
def test_a_time_limit_given_at_submit_blocks_no_loop_past_the_hard_limit(
    start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    """A handler that blocks its loop: Celery's hard limit, set on the message by the
    submitting side (time_limit + its SKILLQ_CANCEL_GRACE + margin), ends it."""
    worker = start_worker(pool="prefork", queues="submit-hard-limit")
    margins = {"cancel_grace": 1.0, "hard_time_limit_margin": 2.0}  # as the workers'
    with SkillClient(settings.model_copy(update=margins)) as client:
        job_id = client.submit(
            "blocker", {"seconds": 60}, queue="submit-hard-limit", time_limit=0.5
        )
        with pytest.raises(JobFailed) as caught:
            client.result(job_id, timeout=60)
    assert caught.value.error_type == "JobTimeout"
    assert "time limit of 3.5 s" in caught.value.error_message
    worker.stop()


AUTH_KEY = "test-signing-key-0123456789"


@pytest.fixture
def signed_worker(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    worker = start_worker(pool="threads", queues="signed", env={"SKILLQ_AUTH_KEY": AUTH_KEY})
    yield worker
    worker.stop()


def test_signed_auth(signed_worker: WorkerProcess, settings: Settings, client: SkillClient) -> None:
    signed = settings.model_copy(update={"auth_key": SecretStr(AUTH_KEY)})
    with SkillClient(signed) as signer:
        job_id = signer.submit(
            "wordcount", {"text": "a b"}, auth={"scopes": ["text:read"]}, queue="signed"
        )
        assert signer.result(job_id, timeout=30)["words"] == 2

    producer: Celery = create_app(settings)
    claims = {"scopes": ["text:read"]}
    args = {"text": "x"}
    genuine_id = str(uuid.uuid4())
    genuine = sign(AUTH_KEY, genuine_id, "wordcount", args, claims, 60)
    forged = {**genuine, "claims": {"scopes": ["text:read", "admin"]}}
    cases = {
        "signed auth required": {"scopes": ["text:read"]},
        "does not match": forged,
        "expired": sign(AUTH_KEY, "placeholder", "wordcount", args, claims, -10),
    }
    replayed_id = str(uuid.uuid4())
    for expected, auth in cases.items():
        job = str(uuid.uuid4())
        if expected == "expired":
            auth = sign(AUTH_KEY, job, "wordcount", args, claims, -10)
        producer.send_task(
            "skills.wordcount",
            kwargs={"args": args, "auth": auth},
            task_id=job,
            queue="signed",
        )
        wait_for(lambda job=job: finished(client, job), 30, expected)  # type: ignore[misc]
        error = client.status(job).error
        assert error is not None and error.type == "InvalidAuth"
        assert expected in error.message and AUTH_KEY not in error.message
    producer.send_task(
        "skills.wordcount",
        kwargs={"args": args, "auth": genuine},
        task_id=replayed_id,
        queue="signed",
    )
    wait_for(lambda: finished(client, replayed_id), 30, "the replayed job")
    error = client.status(replayed_id).error
    assert error is not None and "does not match" in error.message
    assert AUTH_KEY not in signed_worker.log_path.read_text(errors="replace")


def finished(client: SkillClient, job_id: str) -> bool:
    try:
        return client.status(job_id).finished
    except JobNotFound:
        return False


def test_job_ids_are_uuid4_by_default(signed_worker: WorkerProcess, client: SkillClient) -> None:
    ids = {client.submit("echo", {}, queue="never-consumed") for _ in range(3)}
    assert len(ids) == 3
    assert all(uuid.UUID(job_id).version == 4 for job_id in ids)

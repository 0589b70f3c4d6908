"""Core runtime against real Redis, real S3 (moto server) and real workers."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from tests.conftest import AUTH_KEY, BUCKET, SECRET_VALUE
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.wire.signing import sign


class Subscriber:
    """Collects a job's pub/sub envelopes on a thread until the terminal one."""

    def __init__(self, url: str, job_id: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(f"skillq:events:{job_id}")
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            message = self.pubsub.get_message(timeout=0.5)
            if message is None:
                continue
            envelope = json.loads(message["data"])
            self.events.append(envelope)
            if envelope["kind"] == "status" and envelope["payload"]["state"] in (
                "succeeded",
                "failed",
                "cancelled",
            ):
                self.done.set()

    def wait(self, timeout: float = 30) -> list[dict[str, Any]]:
        assert self.done.wait(timeout), f"no terminal event; got {self.events}"
        self.pubsub.close()
        self.client.close()
        return self.events


def send(
    producer: Celery,
    skill: str,
    args: Any = None,
    auth: Any = None,
    queue: str = "default",
    **kw: Any,
) -> str:
    job_id = str(uuid.uuid4())
    kwargs: dict[str, Any] = {"args": args if args is not None else {}}
    if auth is not None:
        # Workers verify signed calls: sign the claims the way a client would.
        kwargs["auth"] = sign(AUTH_KEY, job_id, skill, kwargs["args"], auth, 60)
    producer.send_task(f"skills.{skill}", kwargs=kwargs, task_id=job_id, queue=queue, **kw)
    return job_id


def failure(producer: Celery, job_id: str) -> JobFailed:
    with pytest.raises(JobFailed) as caught:
        AsyncResult(job_id, app=producer).get(timeout=30)
    return caught.value


def test_external_skill_runs_end_to_end(
    worker: WorkerProcess, producer: Celery, settings: Settings, s3: Any
) -> None:
    job_id = str(uuid.uuid4())
    subscriber = Subscriber(settings.effective_redis_url, job_id)
    args = {"text": "the quick brown fox jumps"}
    claims = {"subject": "ana", "scopes": ["text:read"]}
    producer.send_task(
        "skills.wordcount",
        kwargs={"args": args, "auth": sign(AUTH_KEY, job_id, "wordcount", args, claims, 60)},
        task_id=job_id,
        queue="ext",
    )
    result: Any = AsyncResult(job_id, app=producer).get(timeout=30)
    assert result == {
        "words": 5,
        "secret_sha256": hashlib.sha256(SECRET_VALUE.encode()).hexdigest(),
    }

    events = subscriber.wait()
    n = len(events)
    assert [e["seq"] for e in events] == list(range(1, n + 1))
    assert events[0]["kind"] == "status" and events[0]["payload"]["state"] == "running"
    assert events[-1]["kind"] == "status" and events[-1]["payload"]["state"] == "succeeded"
    deltas = [e["payload"]["text"] for e in events if e["kind"] == "text_delta"]
    assert "".join(deltas) == "the quick brown fox jumps "
    assert all(e["job_id"] == job_id and isinstance(e["ts"], float) for e in events)

    client = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    entries: Any = client.xrange(f"skillq:stream:{job_id}")
    stream = [json.loads(f["e"]) for _, f in entries]
    assert stream == events
    assert client.ttl(f"skillq:stream:{job_id}") > 0

    key = f"artifacts/{job_id}/counts/words.json"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "application/json"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == b"the\nquick\nbrown\nfox\njumps"
    artifact_event = next(e for e in events if e["kind"] == "artifact")
    assert artifact_event["payload"]["uri"] == f"s3://{BUCKET}/{key}"

    record = client.hgetall(f"skillq:job:{job_id}")
    assert record["state"] == "succeeded" and record["attempts"] == "1"
    assert record["progress"] == "5/5"
    assert "artifact:counts/words.json" in record


def test_bundled_skills_run(worker: WorkerProcess, producer: Celery) -> None:
    echo = send(producer, "echo", {"message": "hi"})
    story = send(producer, "story", {"words": 3, "delay": 0})
    assert AsyncResult(echo, app=producer).get(timeout=30) == {"message": "hi"}
    assert AsyncResult(story, app=producer).get(timeout=30)["words"] == 3


@pytest.mark.parametrize(
    ("skill", "args", "auth", "queue", "expected"),
    [
        (
            "wordcount",
            {"text": 5},
            {"scopes": ["text:read"]},
            "ext",
            "text: Input should be a valid string",
        ),
        ("wordcount", {}, {"scopes": ["text:read"]}, "ext", "text: Field required"),
        (
            "wordcount",
            {"text": "a b"},
            {"scopes": ["other"]},
            "ext",
            "missing scopes: ['text:read']",
        ),
        ("wordcount", {"text": "a b"}, None, "ext", "signed auth required"),
        (
            "wordcount",
            {"text": "a", "min_length": 0},
            {"scopes": ["text:read"]},
            "ext",
            "min_length",
        ),
        ("undeclared_secret", {}, None, "default", "secret 'OPENAI_KEY' is not declared"),
        ("boom", {}, None, "default", "the handler gave up on purpose"),
        ("bad_event", {}, None, "default", "is not JSON"),
        ("bad_result", {}, None, "default", "not JSON"),
        ("escape_artifact", {"name": "../../etc/passwd"}, None, "default", "invalid artifact name"),
        ("escape_artifact", {"name": "/abs"}, None, "default", "must be relative"),
        ("escape_artifact", {"name": "a\x00b"}, None, "default", "control characters"),
    ],
)
def test_bad_jobs_fail_with_a_clear_message_and_the_worker_goes_on(
    worker: WorkerProcess,
    producer: Celery,
    settings: Settings,
    skill: str,
    args: dict[str, Any],
    auth: dict[str, Any] | None,
    queue: str,
    expected: str,
) -> None:
    job_id = send(producer, skill, args, auth, queue=queue)
    error = failure(producer, job_id)
    assert expected in error.error_message
    assert SECRET_VALUE not in str(error)
    client = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    record = client.hgetall(f"skillq:job:{job_id}")
    assert record["state"] == "failed"
    assert expected in json.loads(record["error"])["message"]
    follow_up = send(producer, "echo", {"message": "still here"})
    assert AsyncResult(follow_up, app=producer).get(timeout=30) == {"message": "still here"}


def test_secret_values_never_leave_the_job(
    worker: WorkerProcess, producer: Celery, settings: Settings
) -> None:
    job_id = str(uuid.uuid4())
    subscriber = Subscriber(settings.effective_redis_url, job_id)
    producer.send_task("skills.leaky", kwargs={"args": {}}, task_id=job_id)
    error = failure(producer, job_id)
    assert "upstream refused key ***" in error.error_message
    events = subscriber.wait()
    text = json.dumps(events)
    assert SECRET_VALUE not in text
    assert "using key ***" in text
    assert SECRET_VALUE not in worker.log_path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("send_args", "send_kwargs", "expected"),
    [
        ((1, 2), {}, "positional arguments are not accepted"),
        ((), {"args": {}, "bogus": 1}, "unexpected keys ['bogus']"),
        ((), {"args": [1, 2]}, "args must be a JSON object"),
        ((), {"args": {}, "auth": "root"}, "auth must be a JSON object"),
    ],
)
def test_wrong_shaped_messages_fail_cleanly(
    worker: WorkerProcess,
    producer: Celery,
    send_args: tuple[Any, ...],
    send_kwargs: dict[str, Any],
    expected: str,
) -> None:
    job_id = str(uuid.uuid4())
    producer.send_task("skills.echo", args=send_args, kwargs=send_kwargs, task_id=job_id)
    assert expected in failure(producer, job_id).error_message


def test_duplicate_delivery_of_a_finished_job_does_not_rerun(
    worker: WorkerProcess, producer: Celery, settings: Settings
) -> None:
    job_id = send(producer, "story", {"words": 2, "delay": 0})
    first: Any = AsyncResult(job_id, app=producer).get(timeout=30)
    client = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    seq_before = client.hget(f"skillq:job:{job_id}", "seq")
    AsyncResult(job_id, app=producer).forget()
    producer.send_task("skills.story", kwargs={"args": {"words": 2, "delay": 0}}, task_id=job_id)
    assert AsyncResult(job_id, app=producer).get(timeout=30) == first
    assert client.hget(f"skillq:job:{job_id}", "seq") == seq_before
    assert client.hget(f"skillq:job:{job_id}", "attempts") == "1"

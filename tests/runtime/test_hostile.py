"""Hostile and malformed input: a clear error, nothing lost, the worker keeps serving."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from tests.conftest import SECRET_VALUE, wait_for
from worker.app import create_app
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.store.keys import Keys

DEAD_LETTER_KEY = Keys().dead_letters


def dead_letters(raw: redis.Redis) -> list[dict[str, Any]]:
    items: Any = raw.lrange(DEAD_LETTER_KEY, 0, -1)
    return [json.loads(item) for item in items]


def still_serving(client: SkillClient) -> None:
    job_id = client.submit("echo", {"message": "still serving"})
    assert client.result(job_id, timeout=30) == {"message": "still serving"}


def envelope(body: Any, content_type: str = "application/json") -> bytes:
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(
        {
            "body": encoded,
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {"task": "skills.echo", "id": str(uuid.uuid4())},
            "properties": {
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": "default"},
                "priority": 0,
            },
        }
    ).encode()


POISON = {
    "garbage bytes": (b"\x80\x81\xfe\xff garbage \x00", "not JSON"),
    "malformed JSON": (b'{"body": "abc", "properties": ', "not JSON"),
    "JSON list": (b"[1, 2, 3]", "not an object"),
    "no properties": (b'{"body": "e30="}', "delivery_tag"),
    "body not base64": (
        json.dumps(
            {
                "body": "%%%not base64%%%",
                "content-type": "application/json",
                "headers": {"task": "skills.echo", "id": "not-base64"},
                "properties": {"body_encoding": "base64", "delivery_tag": "x"},
            }
        ).encode(),
        "body is not JSON",
    ),
    "pickle content type": (
        envelope({"x": 1}, content_type="application/x-python-serialize"),
        "JSON only",
    ),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_items_are_dead_lettered_and_consumption_goes_on(
    worker: WorkerProcess, client: SkillClient, raw: redis.Redis, case: str
) -> None:
    item, reason = POISON[case]
    before = len(dead_letters(raw))
    raw.lpush("default", item)
    wait_for(lambda: len(dead_letters(raw)) > before, 20, "the dead letter")
    letter = dead_letters(raw)[0]
    assert reason in letter["reason"]
    assert letter["queue"] == "default"
    assert base64.b64decode(letter["raw_base64"]) == item
    assert worker.process is not None and worker.process.poll() is None
    still_serving(client)


def test_pickle_payload_is_never_unpickled(
    worker: WorkerProcess, client: SkillClient, settings: Settings, raw: redis.Redis, tmp_path: Any
) -> None:
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    before = len(dead_letters(raw))
    hostile = Celery(broker=settings.broker_url)
    hostile.conf.update(task_serializer="pickle", accept_content=["pickle", "json"])
    job_id = str(uuid.uuid4())
    hostile.send_task(
        "skills.echo", kwargs={"args": {"message": Exploit()}}, task_id=job_id, queue="default"
    )
    wait_for(lambda: len(dead_letters(raw)) > before, 20, "the dead letter")
    assert "application/x-python-serialize" in dead_letters(raw)[0]["reason"]
    still_serving(client)
    assert not marker.exists()
    # The producer learns why its job will never run.
    status = client.status(job_id)
    assert status.state == "failed" and status.error is not None
    assert status.error.type == "MessageRefused" and "JSON only" in status.error.message
    with pytest.raises(JobFailed, match="JSON only"):
        AsyncResult(job_id, app=create_app(settings)).get(timeout=10)


def test_unknown_skill_from_a_raw_producer_fails_the_job(
    worker: WorkerProcess, client: SkillClient, producer: Celery
) -> None:
    job_id = str(uuid.uuid4())
    producer.send_task("skills.no_such_skill", kwargs={"args": {}}, task_id=job_id)
    wait_for(lambda: _state(client, job_id) == "failed", 30, "the job to fail")
    status = client.status(job_id)
    assert status.error is not None
    assert status.error.type == "UnknownSkill"
    assert "no_such_skill" in status.error.message and "echo" in status.error.message
    still_serving(client)


def _state(client: SkillClient, job_id: str) -> str | None:
    try:
        return client.status(job_id).state
    except Exception:
        return None


@pytest.mark.parametrize(
    ("skill", "args", "expected"),
    [
        ("escape_artifact", {"name": "x" * 1025}, "longer than 1024 bytes"),
        ("escape_artifact", {"name": "a/\x01/b"}, "control characters"),
        ("escape_artifact", {"name": "a\\..\\b"}, "must be relative"),
        ("big_event", {}, "larger than the"),
        ("bad_result", {}, "not JSON"),
    ],
)
def test_bad_artifacts_events_and_results_fail_the_job(
    worker: WorkerProcess,
    producer: Celery,
    client: SkillClient,
    skill: str,
    args: Any,
    expected: str,
) -> None:
    job_id = str(uuid.uuid4())
    producer.send_task(f"skills.{skill}", kwargs={"args": args}, task_id=job_id)
    with pytest.raises(JobFailed) as caught:
        AsyncResult(job_id, app=producer).get(timeout=30)
    assert expected in caught.value.error_message
    still_serving(client)


def test_args_too_large_from_a_raw_producer(
    worker: WorkerProcess, producer: Celery, settings: Settings
) -> None:
    job_id = str(uuid.uuid4())
    producer.send_task(
        "skills.echo",
        kwargs={"args": {"message": "x" * (settings.max_args_bytes + 10)}},
        task_id=job_id,
    )
    with pytest.raises(JobFailed, match="byte limit"):
        AsyncResult(job_id, app=producer).get(timeout=30)


def test_secrets_logged_by_a_handler_are_redacted(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = client.submit("logs_secret", {})
    assert client.result(job_id, timeout=30) == "logged"
    wait_for(lambda: "logged the key: ***" in worker.log_path.read_text(), 10, "the log line")
    assert SECRET_VALUE not in worker.log_path.read_text(errors="replace")


def test_secrets_in_results_are_redacted(worker: WorkerProcess, client: SkillClient) -> None:
    job_id = client.submit("returns_secret", {})
    assert client.result(job_id, timeout=30) == {"key": "***", "note": "plain"}
    assert SECRET_VALUE not in json.dumps(list(client.events(job_id)))

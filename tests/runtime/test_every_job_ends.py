"""Every job ends, with a reason a person can act on, and the worker serves on.

Handlers that raise what would stop a worker, processes that die on every
attempt, hostile queue items that pass as JSON, and nesting deep enough to
break the JSON decoder or pickling: each must end its job and leave the
worker consuming (prefork and threads unless the case is pool-specific).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.core.errors import InvalidArgs, JobFailed, JobNotFound
from worker.embedded import WorkerProcess
from worker.store.keys import Keys

DEAD = Keys().dead_letters


def serves_on(worker: WorkerProcess, client: SkillClient, queue: str = "default") -> None:
    """The worker is alive and runs more jobs than it has processes or threads."""
    ids = [client.submit("echo", {"message": f"after {n}"}, queue=queue) for n in range(4)]
    assert [client.result(job_id, timeout=30) for job_id in ids] == [
        {"message": f"after {n}"} for n in range(4)
    ]
    assert worker.process is not None and worker.process.poll() is None


def failure(client: SkillClient, job_id: str, timeout: float = 30) -> JobFailed:
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=timeout)
    return caught.value


def finished(client: SkillClient, job_id: str) -> bool:
    try:
        return client.status(job_id).finished
    except JobNotFound:
        return False


ABORTS = {
    "system_exit": "SystemExit(3)",
    "keyboard_interrupt": "KeyboardInterrupt",
    "generator_exit": "GeneratorExit",
    "cancelled": "CancelledError",
}


@pytest.mark.parametrize("how", sorted(ABORTS))
def test_handler_base_exceptions_fail_the_job_and_the_worker_serves_on(
    worker: WorkerProcess, client: SkillClient, how: str
) -> None:
    job_id = client.submit("aborts", {"how": how})
    error = failure(client, job_id)
    assert error.error_type == "HandlerAborted"
    assert error.code == "handler_aborted"
    assert ABORTS[how] in error.error_message
    status = client.status(job_id)
    assert status.state == "failed" and status.attempts == 1
    assert status.error is not None and status.error.traceback
    serves_on(worker, client)


def test_a_stray_task_raising_system_exit_does_not_stop_the_loop(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = client.submit("aborts", {"how": "stray_task"})
    assert client.result(job_id, timeout=30) == "survived"
    serves_on(worker, client)


def test_solo_pool_survives_every_handler_base_exception(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(pool="solo", concurrency=1, queues="solo-aborts")
    for how, shown in ABORTS.items():
        job_id = client.submit("aborts", {"how": how}, queue="solo-aborts")
        error = failure(client, job_id)
        assert error.code == "handler_aborted" and shown in error.error_message
    stray = client.submit("aborts", {"how": "stray_task"}, queue="solo-aborts")
    assert client.result(stray, timeout=30) == "survived"
    serves_on(worker, client, "solo-aborts")
    worker.stop()


@pytest.mark.keeps_pool
def test_a_job_whose_process_dies_every_time_fails_after_max_deliveries(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    worker = start_worker(pool="prefork", concurrency=2, queues="poison-jobs")
    tally = tmp_path / "tally"
    job_id = client.submit("dies", {"tally": str(tally)}, queue="poison-jobs")
    error = failure(client, job_id, timeout=90)
    assert error.error_type == "DeliveryLimitExceeded" and error.code == "delivery_limit"
    assert "gave up after 3 deliveries" in error.error_message
    assert "SKILLQ_MAX_DELIVERIES" in error.error_message
    # The handler ran exactly SKILLQ_MAX_DELIVERIES times, never again.
    assert len(tally.read_text().split()) == 3
    status = client.status(job_id)
    assert status.attempts == 4 and status.state == "failed"
    serves_on(worker, client, "poison-jobs")
    assert len(tally.read_text().split()) == 3
    worker.stop()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth - 1):
        value = [value]
    return value


def test_deep_nesting_is_refused_at_submit(client: SkillClient) -> None:
    for depth in (500, 5000):
        with pytest.raises(InvalidArgs, match="SKILLQ_MAX_ARGS_DEPTH"):
            client.submit("echo_any", {"deep": nested(depth)})
    job_id = client.submit("echo_any", {"deep": nested(60)})  # within the limit: runs
    assert client.status(job_id).state in ("queued", "running", "succeeded")


def test_deep_nesting_from_a_raw_producer_fails_the_job(
    worker: WorkerProcess, client: SkillClient, producer: Celery
) -> None:
    job_id = str(uuid.uuid4())
    producer.send_task("skills.echo_any", kwargs={"args": {"deep": nested(500)}}, task_id=job_id)
    wait_for(lambda: finished(client, job_id), 20, "the job to be failed")
    error = failure(client, job_id)
    assert error.error_type == "MessageRefused" and "SKILLQ_MAX_ARGS_DEPTH" in error.error_message
    fine = client.submit("echo_any", {"deep": nested(60)})
    assert client.result(fine, timeout=30) == {"type": "dict", "args": {"deep": nested(60)}}
    serves_on(worker, client)


def captured(producer: Celery, raw: redis.Redis, task: str, kwargs: dict[str, Any]) -> Any:
    """A real message, as kombu writes it, taken off a queue nobody consumes."""
    queue = f"capture-{uuid.uuid4().hex[:8]}"
    job_id = str(uuid.uuid4())
    producer.send_task(task, kwargs=kwargs, task_id=job_id, queue=queue)
    item: Any = raw.rpop(queue)
    return json.loads(item)


def with_body(envelope: dict[str, Any], body: Any) -> dict[str, Any]:
    encoded = body if isinstance(body, str) else json.dumps(body)
    return {**envelope, "body": base64.b64encode(encoded.encode()).decode()}


def mutations(envelope: dict[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    """Items that are well-formed JSON but would break Celery's consumer."""
    headers = envelope["headers"]
    body = json.loads(base64.b64decode(envelope["body"]))
    deep = '[[], {"args": {"deep": ' + "[" * 1000 + "]" * 1000 + "}}, {}]"
    return {
        "id is an object": (
            {**envelope, "headers": {**headers, "id": {"x": 1}}},
            "headers.id",
        ),
        "timelimit is text": (
            {**envelope, "headers": {**headers, "timelimit": "abc"}},
            "timelimit",
        ),
        "body of two": (with_body(envelope, body[:2]), "[args, kwargs, embed]"),
        "bad eta": ({**envelope, "headers": {**headers, "eta": "not a date"}}, "eta"),
        "bad expires": (
            {**envelope, "headers": {**headers, "expires": "9999-99-99T00:00:00"}},
            "expires",
        ),
        "kwargs a list": (with_body(envelope, [[], [1, 2], {}]), "kwargs is not an object"),
        "embed text": (with_body(envelope, [[], {"args": {}}, "x"]), "embed is not an object"),
        "task an object": ({**envelope, "headers": {**headers, "task": {"a": 1}}}, "headers.task"),
        "1000 levels": (with_body(envelope, deep), "nests"),
        # kombu's JSON turns {"__type__": ...} objects into Python values, as the
        # consumer would: one it cannot turn is refused here, not in the consumer.
        "bad kombu marker": (
            with_body(envelope, [[], {"args": {"__type__": "datetime", "__value__": "x"}}, {}]),
            "body is not JSON",
        ),
    }


CASES = sorted(mutations({"headers": {}, "body": base64.b64encode(b"[[],{},{}]").decode()}))


@pytest.mark.parametrize("case", CASES)
def test_items_that_would_break_the_consumer_are_dead_lettered_and_fail_their_job(
    worker: WorkerProcess,
    client: SkillClient,
    producer: Celery,
    raw: redis.Redis,
    case: str,
) -> None:
    envelope = captured(producer, raw, "skills.echo", {"args": {"message": "hi"}})
    job_id = envelope["headers"]["id"]
    item, reason = mutations(envelope)[case]
    before = raw.llen(DEAD)
    raw.lpush("default", json.dumps(item))
    wait_for(lambda: raw.llen(DEAD) > before, 20, "the dead letter")
    letter = json.loads(raw.lindex(DEAD, 0))  # type: ignore[arg-type]
    assert reason in letter["reason"], letter["reason"]
    if isinstance(item["headers"].get("id"), str) and isinstance(item["headers"].get("task"), str):
        # The job it names ends failed, with the reason, instead of never.
        wait_for(lambda: finished(client, job_id), 20, "the job to be failed")
        status = client.status(job_id)
        assert status.error is not None and status.error.type == "MessageRefused"
        assert status.error.code == "message_refused" and reason in status.error.message
    serves_on(worker, client)

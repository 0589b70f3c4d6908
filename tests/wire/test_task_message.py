"""The message a client queues in its ``SUBMIT`` script is the one Celery's
``send_task`` queues with skillq's configuration, field by field, so a Celery
or kombu upgrade that changes the format fails here, not in production."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from worker.client import SkillClient
from worker.core.errors import InvalidArgs, JobNotFound
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis
from worker.wire.skill_info import SkillInfo
from worker.wire.task_message import priority_list

RANDOM = {"reply_to", "delivery_tag"}  # per producer / per message in both


def queued(
    settings: Settings,
    args: dict[str, Any],
    queue: str,
    grant: str | None = None,
    countdown: float | None = None,
    priority: int | None = None,
    concurrency_key: str | None = None,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Submit one job (no worker runs) and take its message off the queue."""
    with SkillClient(settings) as client:
        info = SkillInfo(
            name="echo", queue=queue, workers=["nobody"], workspace_access=True, key_concurrency=1
        )
        client._cache.update({"echo": info})
        job_id = client.submit(
            "echo",
            args,
            job_id=f"msg-{uuid.uuid4().hex}",
            grant=grant,
            countdown=countdown,
            priority=priority,
            concurrency_key=concurrency_key,
            time_limit=time_limit,
        )
        assert client.status(job_id).state == "queued"
        broker = redis.Redis.from_url(settings.broker_url)
        raw = broker.rpop(priority_list(queue, priority or 0))
        assert all(broker.llen(priority_list(queue, p)) == 0 for p in range(10))
    assert isinstance(raw, bytes)
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    if countdown is not None:
        # Computed from each producer's clock: the same moment within a second.
        due = datetime.fromisoformat(message["headers"].pop("eta")).timestamp()
        assert abs(due - (time.time() + countdown)) < 1.0
        message["headers"]["eta"] = "<eta>"
    for key in ("id", "root_id"):
        assert message["headers"][key] == job_id
        message["headers"][key] = "<job>"
    assert message["properties"]["correlation_id"] == job_id
    message["properties"]["correlation_id"] = "<job>"
    for key in RANDOM:
        uuid.UUID(message["properties"].pop(key))
    # For people reading logs and Flower only; Celery's saferepr elides nested
    # levels, skillq's is Python's repr cut to the same length.
    shown = message["headers"].pop("kwargsrepr")
    assert shown.startswith("{'args': {") and len(shown) <= 1100  # about 1 KiB in both
    if grant is not None:
        # A grant is a bearer credential: in the body for the worker, never shown.
        assert grant not in shown
        assert "'grant': '<workspace grant>'" in shown or shown.endswith("...")
    return message


@pytest.fixture(params=["one-database", "broker-on-another-database"])
def layout(request: pytest.FixtureRequest, redis_server: EmbeddedRedis) -> Iterator[Settings]:
    base = redis_server.url.rsplit("/", 1)[0]
    records = f"{base}/7"
    broker = records if request.param == "one-database" else f"{base}/8"
    yield Settings(broker_url=broker, redis_url=records, key_prefix="msgtest")


@pytest.mark.parametrize(
    "args",
    [
        {"message": "hi"},
        {"text": "ünïcödé ✓ \u2028", "nested": {"list": [1, 2.5, None, True]}},
        {},
    ],
)
def test_the_script_queues_what_celery_would(layout: Settings, args: dict[str, Any]) -> None:
    ours = queued(layout, args, "default")
    theirs = queued(layout.model_copy(update={"direct_publish": False}), args, "default")
    assert ours == theirs


@pytest.mark.parametrize("args", [{"message": "hi"}, {"text": "x" * 5000}])
def test_a_grant_travels_in_the_body_and_is_never_shown(
    layout: Settings, args: dict[str, Any]
) -> None:
    grant = f"eyJhbGciOiJIUzI1NiJ9.e30.{uuid.uuid4().hex}"
    ours = queued(layout, args, "default", grant)
    theirs = queued(layout.model_copy(update={"direct_publish": False}), args, "default", grant)
    assert ours["body"][1] == {"args": args, "grant": grant}
    assert ours == theirs


def test_a_delayed_message_is_what_celery_would_queue(layout: Settings) -> None:
    ours = queued(layout, {"message": "later"}, "default", countdown=600)
    theirs = queued(
        layout.model_copy(update={"direct_publish": False}),
        {"message": "later"},
        "default",
        countdown=600,
    )
    assert ours == theirs


@pytest.mark.parametrize("priority", [1, 5, 9])
def test_a_prioritised_message_is_what_celery_would_queue(layout: Settings, priority: int) -> None:
    ours = queued(layout, {"message": "soon"}, "default", priority=priority)
    theirs = queued(
        layout.model_copy(update={"direct_publish": False}),
        {"message": "soon"},
        "default",
        priority=priority,
    )
    assert ours["properties"]["priority"] == priority
    assert ours == theirs


def test_a_concurrency_key_travels_in_the_body(layout: Settings) -> None:
    grant = f"eyJhbGciOiJIUzI1NiJ9.e30.{uuid.uuid4().hex}"
    ours = queued(layout, {"n": 1}, "default", grant, concurrency_key="customer-42")
    theirs = queued(
        layout.model_copy(update={"direct_publish": False}),
        {"n": 1},
        "default",
        grant,
        concurrency_key="customer-42",
    )
    assert ours["body"][1] == {"args": {"n": 1}, "grant": grant, "concurrency_key": "customer-42"}
    assert ours == theirs


def test_a_time_limit_travels_in_the_body_and_as_celerys_hard_limit(layout: Settings) -> None:
    ours = queued(layout, {"n": 1}, "default", time_limit=2.5)
    theirs = queued(
        layout.model_copy(update={"direct_publish": False}), {"n": 1}, "default", time_limit=2.5
    )
    assert ours["body"][1] == {"args": {"n": 1}, "time_limit": 2.5}
    hard = 2.5 + layout.cancel_grace + layout.hard_time_limit_margin
    assert ours["headers"]["timelimit"] == [hard, None]
    assert ours == theirs


def test_long_args_are_whole_in_the_body(layout: Settings) -> None:
    args = {"text": "x" * 5000}
    ours = queued(layout, args, "other")
    theirs = queued(layout.model_copy(update={"direct_publish": False}), args, "other")
    assert ours["body"] == theirs["body"]
    assert ours["body"][1] == {"args": args}
    assert ours["properties"]["delivery_info"]["routing_key"] == "other"
    assert ours == theirs


@pytest.mark.parametrize("direct", [True, False])
def test_a_queue_the_broker_refuses_leaves_no_record(layout: Settings, direct: bool) -> None:
    settings = layout.model_copy(update={"direct_publish": direct})
    redis.Redis.from_url(settings.broker_url).set("jammed", "not a list")
    with SkillClient(settings) as client:
        client._cache.update({"echo": SkillInfo(name="echo", queue="jammed", workers=["x"])})
        job_id = f"jam-{uuid.uuid4().hex}"
        with pytest.raises(Exception, match="WRONGTYPE"):  # redis-py's, or kombu's
            client.submit("echo", {}, job_id=job_id)
        with pytest.raises(JobNotFound):
            client.status(job_id)
        assert job_id not in [job.id for job in client.jobs(limit=1000).jobs]


def test_queue_names_cannot_name_other_keys(layout: Settings) -> None:
    with SkillClient(layout) as client:
        client._cache.update({"echo": SkillInfo(name="echo", workers=["x"])})
        for queue in ("msgtest:job:x", "_kombu.binding.default", "a b", "", "q\n"):
            job_id = f"bad-{uuid.uuid4().hex}"
            with pytest.raises(InvalidArgs, match="queue name"):
                client.submit("echo", {}, queue=queue or "x" * 200, job_id=job_id)
            with pytest.raises(JobNotFound):
                client.status(job_id)
        with pytest.raises(InvalidArgs, match="job id"):
            client.submit("echo", {}, job_id="trailing-newline\n")

"""The Python client against real workers, Redis and S3."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import wait_for
from worker.client import AsyncSkillClient, SkillClient
from worker.core.errors import InvalidArgs, JobCancelled, JobFailed, JobNotFound, UnknownSkill
from worker.core.settings import Settings
from worker.embedded import WorkerProcess


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


def stream_of(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    raw = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    entries: Any = raw.xrange(f"skillq:stream:{job_id}")
    return [json.loads(fields["e"]) for _, fields in entries]


def test_job_goes_queued_running_succeeded(
    worker: WorkerProcess, client: SkillClient, start_worker: Callable[..., WorkerProcess]
) -> None:
    # `worker` registers the skills but does not consume the "late" queue.
    job_id = client.submit("story", {"words": 3, "delay": 0}, queue="late")
    queued = client.status(job_id)
    assert queued.state == "queued" and queued.created_at and queued.attempts == 0
    late = start_worker(pool="threads", queues="late")
    assert client.result(job_id, timeout=30) == {"text": "once upon a", "words": 3}
    done = client.status(job_id)
    assert done.state == "succeeded"
    assert done.worker == late.hostname
    assert done.attempts == 1
    assert done.created_at is not None and done.started_at is not None
    assert done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    assert done.progress == "3/3 words"
    states = [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]
    assert states == ["running", "succeeded"]
    late.stop()


def test_result_and_full_replay_after_completion(
    worker: WorkerProcess, client: SkillClient, settings: Settings
) -> None:
    job_id = client.submit("story", {"words": 10, "delay": 0})
    assert client.result(job_id, timeout=30)["words"] == 10
    replay = list(client.events(job_id, timeout=10))
    assert seqs(replay) == list(range(1, len(replay) + 1))
    assert replay == stream_of(settings, job_id)
    assert replay[-1]["payload"]["state"] == "succeeded"
    assert list(client.events(job_id, after=5, timeout=10)) == replay[5:]
    assert list(client.events(job_id, follow=False)) == replay


def test_events_joined_mid_run_have_no_gap_or_duplicate(
    worker: WorkerProcess, client: SkillClient, settings: Settings
) -> None:
    job_id = client.submit("story", {"words": 60, "delay": 0.01})
    wait_for(lambda: client.status(job_id).last_seq >= 5, 20, "the job to emit events")
    live = list(client.events(job_id, timeout=30))
    assert seqs(live) == list(range(1, len(live) + 1))
    assert live == stream_of(settings, job_id)
    assert sum(1 for e in live if e["kind"] == "text_delta") == 60


def test_artifacts_listed_read_and_presigned(worker: WorkerProcess, client: SkillClient) -> None:
    job_id = client.submit("report", {"title": "T", "lines": ["one", "two"]})
    client.result(job_id, timeout=30)
    refs = client.artifacts(job_id)
    assert [(r.name, r.mime_type) for r in refs] == [("report.md", "text/markdown")]
    assert refs[0].uri.endswith(f"/{job_id}/report.md")
    assert client.read_artifact(refs[0]) == b"# T\n\none\ntwo\n"
    with urllib.request.urlopen(client.artifact_url(refs[0], expires=60), timeout=10) as response:
        assert response.read() == b"# T\n\none\ntwo\n"


def test_skills_lists_external_skill_with_schema(
    worker: WorkerProcess, client: SkillClient
) -> None:
    found = {s.name: s for s in client.skills()}
    assert {"echo", "story", "report", "sleepy", "wordcount"} <= set(found)
    wordcount = found["wordcount"]
    assert wordcount.queue == "ext"
    assert wordcount.scopes == ["text:read"]
    assert wordcount.args_schema["required"] == ["text"]
    assert worker.hostname in wordcount.workers


def test_unknown_job_ids_are_not_found(worker: WorkerProcess, client: SkillClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(JobNotFound):
        client.status(missing)
    with pytest.raises(JobNotFound):
        client.result(missing, timeout=1)
    with pytest.raises(JobNotFound):
        list(client.events(missing, timeout=1))
    with pytest.raises(JobNotFound):
        client.cancel(missing)


def test_unknown_skill_and_bad_args_are_refused_before_enqueueing(
    worker: WorkerProcess, client: SkillClient, settings: Settings
) -> None:
    raw = redis.Redis.from_url(settings.effective_redis_url)
    before = raw.llen("ext"), raw.llen("default")
    with pytest.raises(UnknownSkill, match="nope"):
        client.submit("nope", {})
    with pytest.raises(InvalidArgs, match="text: field required"):
        client.submit("wordcount", {})
    with pytest.raises(InvalidArgs, match=r"text: .* is not of type 'string'"):
        client.submit("wordcount", {"text": {"a": 1}})
    with pytest.raises(InvalidArgs, match="not JSON"):
        client.submit("echo", {"message": {1, 2}})
    with pytest.raises(InvalidArgs, match="byte limit"):
        client.submit("echo", {"message": "x" * (settings.max_args_bytes + 1)})
    with pytest.raises(InvalidArgs, match="job id"):
        client.submit("echo", {}, job_id="../escape")
    assert (raw.llen("ext"), raw.llen("default")) == before
    lax = client.submit(
        "wordcount", {"text": "a bb ccc", "min_length": "2"}, auth={"scopes": ["text:read"]}
    )
    assert client.result(lax, timeout=30)["words"] == 2


def test_the_same_job_id_never_starts_a_second_job(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = f"order-{uuid.uuid4()}"
    assert client.submit("story", {"words": 2, "delay": 0}, job_id=job_id) == job_id
    assert client.submit("story", {"words": 2, "delay": 0}, job_id=job_id) == job_id
    client.result(job_id, timeout=30)
    assert client.status(job_id).attempts == 1
    assert client.submit("story", {"words": 2, "delay": 0}, job_id=job_id) == job_id
    assert client.status(job_id).attempts == 1
    statuses = [e for e in client.events(job_id) if e["kind"] == "status"]
    assert len(statuses) == 2


def test_failed_and_cancelled_jobs_raise(worker: WorkerProcess, client: SkillClient) -> None:
    failing = client.submit("boom", {})
    with pytest.raises(JobFailed) as caught:
        client.result(failing, timeout=30)
    assert caught.value.error_type == "ValueError"
    assert client.status(failing).error is not None

    running = client.submit("sleepy", {"seconds": 60})
    wait_for(lambda: client.status(running).state == "running", 20, "the job to start")
    assert client.cancel(running) is True
    with pytest.raises(JobCancelled):
        client.result(running, timeout=30)
    assert client.status(running).state == "cancelled"
    assert client.cancel(running) is False


def test_result_times_out(worker: WorkerProcess, client: SkillClient) -> None:
    job_id = client.submit("sleepy", {"seconds": 60})
    with pytest.raises(TimeoutError):
        client.result(job_id, timeout=0.5)
    client.cancel(job_id)
    with pytest.raises(JobCancelled):
        client.result(job_id, timeout=30)


def test_async_client(worker: WorkerProcess, settings: Settings) -> None:
    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with AsyncSkillClient(settings) as client:
            job_id = await client.submit("echo", {"message": "async"})
            value = await client.result(job_id, timeout=30)
            events = [e async for e in client.events(job_id)]
            return value, events

    value, events = asyncio.run(go())
    assert value == {"message": "async"}
    assert [e["payload"]["state"] for e in events] == ["running", "succeeded"]

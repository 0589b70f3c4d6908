"""Durable steps on real workers: a killed worker's job resumes elsewhere with
finished steps not run again; a retry skips them too; a step's result never
holds a secret; names are unique. And the same on LocalRunContext."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from worker import DuplicateStep, InvalidResult, LocalRunContext, NoAuth
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.embedded import WorkerProcess

ENV = {"SKILLQ_SKILLS": "tasks,step_skills", "SKILLQ_LEASE": "3"}


def ran(counter: Path) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


def test_a_killed_workers_job_resumes_without_running_finished_steps(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    counter, gate = tmp_path / "counter", tmp_path / "gate"
    doomed = start_worker(pool="prefork", concurrency=1, queues="steps", env=ENV)
    job = client.submit("three_steps", {"counter": str(counter), "gate": str(gate)})
    wait_for(lambda: ran(counter) == ["one", "two"], 30, "steps one and two")
    wait_for(
        lambda: any(s.name == "two" for s in client.status(job).steps), 30, "step two recorded"
    )
    survivor = start_worker(pool="threads", concurrency=1, queues="steps", env=ENV)
    for pid in doomed.pids():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: client.status(job).worker == survivor.hostname, 60, "the job to move")
    gate.touch()
    assert client.result(job, timeout=60) == {"steps": ["one", "two", ["three", 3]]}
    assert ran(counter).count("one") == 1 and ran(counter).count("two") == 1
    status = client.status(job)
    assert status.attempts == 2
    assert [s.name for s in status.steps] == ["one", "two", "three"]
    assert all(s.state == "done" and s.started_at and s.ended_at for s in status.steps)
    reported = [
        (e["payload"]["name"], e["payload"]["state"])
        for e in client.events(job)
        if e["kind"] == "step"
    ]
    assert ("one", "replayed") in reported and ("two", "replayed") in reported
    assert reported.count(("three", "done")) == 1


def test_a_retry_skips_the_steps_that_finished(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps", env=ENV)
    counter = tmp_path / "counter"
    job = client.submit("steps_then_retry", {"counter": str(counter)})
    assert client.result(job, timeout=60) == 2  # "paid" once, "attempt" once
    assert ran(counter) == ["paid", "attempt"]
    assert client.status(job).retries == 1


def test_step_results_hold_no_secret_and_names_are_unique(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps", env=ENV)
    leaky = client.submit("leaky_step", {})
    with pytest.raises(JobFailed) as caught:
        client.result(leaky, timeout=60)
    assert caught.value.code == "invalid_result" and "secret" in caught.value.error_message
    assert client.status(leaky).steps == []
    twice = client.submit("same_step_twice", {})
    with pytest.raises(JobFailed) as again:
        client.result(twice, timeout=60)
    assert again.value.code == "duplicate_step"


def test_local_steps_run_once_and_resume_from_what_is_given() -> None:
    calls: list[str] = []

    def sync_step(value: int) -> tuple[int, int]:
        calls.append("sync")
        return (value, value)

    async def async_step() -> dict[str, Any]:
        calls.append("async")
        return {"a": 1}

    async def handler(ctx: LocalRunContext[NoAuth]) -> list[Any]:
        first = await ctx.step("first", sync_step, 2)
        second = await ctx.step("second", async_step)
        return [first, second]

    ctx = LocalRunContext(auth=NoAuth())
    assert asyncio.run(handler(ctx)) == [[2, 2], {"a": 1}]  # JSON's shape, also the first time
    assert calls == ["sync", "async"] and ctx.steps == {"first": [2, 2], "second": {"a": 1}}
    resumed = LocalRunContext(auth=NoAuth(), steps={"first": [7, 7]})
    assert asyncio.run(handler(resumed)) == [[7, 7], {"a": 1}]
    assert calls == ["sync", "async", "async"]
    assert [e.payload["state"] for e in resumed.events if e.kind == "step"] == [
        "replayed",
        "running",
        "done",
    ]

    async def repeated(ctx: LocalRunContext[NoAuth]) -> None:
        await ctx.step("x", lambda: 1)
        await ctx.step("x", lambda: 2)

    with pytest.raises(DuplicateStep, match="'x' already ran"):
        asyncio.run(repeated(LocalRunContext(auth=NoAuth())))

    async def failing(ctx: LocalRunContext[NoAuth]) -> None:
        await ctx.step("boom", lambda: 1 / 0)

    broken = LocalRunContext(auth=NoAuth())
    with pytest.raises(ZeroDivisionError):
        asyncio.run(failing(broken))
    assert broken.steps == {}  # not stored: it runs again next time

    async def not_json(ctx: LocalRunContext[NoAuth]) -> None:
        await ctx.step("set", lambda: {1, 2})

    with pytest.raises(InvalidResult, match="JSON"):
        asyncio.run(not_json(LocalRunContext(auth=NoAuth())))


def test_a_durable_sleep_frees_the_worker_and_resumes_after_it(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-nap", env=ENV)
    counter = tmp_path / "counter"
    submitted = time.time()
    job = client.submit("napper", {"counter": str(counter), "seconds": 4}, queue="steps-nap")
    wait_for(lambda: client.status(job).state == "queued" and ran(counter), 30, "the sleep")
    sleeping = client.status(job)
    assert sleeping.notice is not None and "sleeping until" in sleeping.notice
    # The one slot is free meanwhile: another job runs while this one sleeps.
    other = client.submit("echo", {"message": "meanwhile"}, queue="steps-nap")
    assert client.result(other, timeout=30) == {"message": "meanwhile"}
    assert client.status(job).state == "queued"
    assert client.result(job, timeout=60) == {"woke": True}
    status = client.status(job)
    assert status.started_at is not None and 4.0 <= status.started_at - submitted < 7.0
    assert ran(counter) == ["before", "outside", "outside", "after"]
    assert status.attempts == 2 and status.state == "succeeded"
    states = [e["payload"]["state"] for e in client.events(job) if e["kind"] == "status"]
    assert states == ["running", "queued", "running", "succeeded"]


def test_a_sleeping_job_is_cancelled_at_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-nap", env=ENV)
    counter = tmp_path / "counter"
    job = client.submit("napper", {"counter": str(counter), "seconds": 3600}, queue="steps-nap")
    wait_for(lambda: client.status(job).state == "queued" and ran(counter), 30, "the sleep")
    assert client.cancel(job)
    assert client.status(job).state == "cancelled"
    assert "after" not in ran(counter)


def test_local_sleep_is_recorded_and_returns_at_once() -> None:
    async def handler(ctx: LocalRunContext[NoAuth]) -> str:
        await ctx.sleep(86400)
        return "done"

    ctx = LocalRunContext(auth=NoAuth())
    assert asyncio.run(handler(ctx)) == "done" and ctx.slept == [86400]

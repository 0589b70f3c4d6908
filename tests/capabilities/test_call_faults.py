"""A caller's next run finds the children its last run made (its worker died,
or it retried): a child that succeeded returns its stored result without
running again, a queued child still running is waited on again instead of
being cancelled, an inline child whose process died runs again in the caller's
new run, and a child that failed is made anew. Children never outlive their
caller: cancelling the caller ends them."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import wait_for
from worker.capabilities.calls import call_key, child_job_id
from worker.client import SkillClient
from worker.embedded import WorkerProcess

QUEUE = "doomed"
PARENTS = {"SKILLQ_SKILLS": "kept_call_skills", "SKILLQ_AGENT": "parents"}
KIDS = {"SKILLQ_SKILLS": "kept_children", "SKILLQ_AGENT": "kids"}


def kill_pool(worker: WorkerProcess) -> None:
    """SIGKILL the pool processes (the main process lives and forks anew)."""
    assert worker.process is not None
    for pid in worker.pids():
        if pid != worker.process.pid:
            os.kill(pid, signal.SIGKILL)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.keeps_pool
def test_an_inline_child_of_a_killed_process_runs_again_in_its_callers_next_run(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(
        pool="prefork",
        concurrency=1,
        queues=QUEUE,
        env={"SKILLQ_SKILLS": "agent_skills", "SKILLQ_AGENT": "doomed"},
    )
    call = {"target": "doomed", "skill": "napper", "args": {"seconds": 60}}
    job = client.submit("call_one", call, queue=QUEUE)
    [child] = wait_for(lambda: client.status(job).children, 30, "the child job")
    wait_for(lambda: client.status(child).state == "running", 30, "the child to run")
    kill_pool(worker)  # the pool process running parent and child
    wait_for(lambda: client.status(child).attempts == 2, 60, "the child to run again")
    assert client.status(child).state == "running"
    assert client.status(job).attempts == 2  # the parent was delivered again...
    assert client.status(job).children == [child]  # ...and made the same call
    assert client.cancel(job)  # its child goes with it
    wait_for(lambda: client.status(child).finished, 30, "the child to end")
    assert client.status(child).state == "cancelled"
    wait_for(lambda: client.status(job).finished, 30, "the parent to end")
    worker.stop()


@pytest.mark.keeps_pool
def test_a_parent_delivered_again_keeps_its_finished_child_and_waits_for_its_running_one(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=2, queues="kept-child", env=KIDS)
    parents = start_worker(pool="prefork", concurrency=1, queues="kept-parent", env=PARENTS)
    counter, gate = tmp_path / "counter", tmp_path / "gate"
    job = client.submit("keeps_children", {"counter": str(counter), "gate": str(gate)})
    quick, gated = wait_for(
        lambda: client.status(job).children[1:] and client.status(job).children, 60, "both children"
    )
    wait_for(lambda: client.status(gated).state == "running", 30, "the gated child to run")
    kill_pool(parents)
    wait_for(
        lambda: client.status(job).attempts == 2 and client.status(job).state == "running",
        60,
        "the parent to run again",
    )
    assert client.status(gated).state == "running"  # not cancelled
    gate.touch()
    assert client.result(job, timeout=60) == ["quick 1", "gated"]
    assert lines(counter).count("quick") == 1 and lines(counter).count("gated") == 1
    assert client.status(job).children == [quick, gated]
    assert [client.status(c).attempts for c in (quick, gated)] == [1, 1]


def open_gate_workers(start_worker: Callable[..., WorkerProcess], tmp_path: Path) -> Path:
    """Workers for the caller and its children, and its gate already open;
    the counter file's path."""
    start_worker(pool="threads", concurrency=2, queues="kept-child", env=KIDS)
    start_worker(pool="threads", concurrency=1, queues="kept-parent", env=PARENTS)
    (tmp_path / "gate").touch()
    return tmp_path / "counter"


def test_a_child_that_failed_is_made_anew_on_its_callers_retry(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    counter = open_gate_workers(start_worker, tmp_path)
    args = {"counter": str(counter), "gate": str(tmp_path / "gate"), "fail_first": True}
    job = client.submit("keeps_children", args)
    assert client.result(job, timeout=60) == ["quick 2", "gated"]
    status = client.status(job)
    assert status.retries == 1 and len(status.children) == 3
    assert [client.status(c).state for c in status.children] == ["failed", *["succeeded"] * 2]
    assert lines(counter) == ["quick", "quick", "gated", "parent"]


def test_a_job_submitted_under_a_calls_child_id_is_not_taken_for_its_child(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    counter = open_gate_workers(start_worker, tmp_path)
    args = {"counter": str(counter), "gate": str(tmp_path / "gate")}
    parent = f"kept-{uuid.uuid4()}"
    forged = child_job_id(call_key(parent, 0, "kids", "quick_child", args, None), 0)
    client.submit("quick_child", {"counter": str(tmp_path / "other")}, job_id=forged)
    assert client.result(forged, timeout=60) == "quick 1"
    job = client.submit("keeps_children", args, job_id=parent)
    assert client.result(job, timeout=60) == ["quick 1", "gated"]
    assert forged not in client.status(job).children
    assert lines(counter) == ["quick", "gated", "parent"]

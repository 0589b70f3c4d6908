"""Children never outlive their caller: a child that ran inline in a worker
process that died fails with ``caller_ended`` when its parent is delivered
again, instead of staying ``running`` forever."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.embedded import WorkerProcess

QUEUE = "doomed"


def test_inline_children_of_a_killed_process_fail_and_the_parent_runs_again(
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
    assert worker.process is not None
    for pid in worker.pids():
        if pid != worker.process.pid:
            os.kill(pid, signal.SIGKILL)  # the pool process running parent and child
    wait_for(lambda: client.status(child).finished, 60, "the orphaned child to end")
    orphan = client.status(child)
    assert orphan.state == "failed" and orphan.error is not None
    assert orphan.error.code == "caller_ended"
    assert client.status(job).attempts == 2  # the parent was delivered again...
    second = wait_for(lambda: client.status(job).children[1:], 30, "its new child")
    assert client.cancel(job)  # ...and its new child goes with it
    wait_for(lambda: client.status(second[0]).finished, 30, "the new child to end")
    assert client.status(second[0]).state == "cancelled"
    wait_for(lambda: client.status(job).finished, 30, "the parent to end")
    worker.stop()

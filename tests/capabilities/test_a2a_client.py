"""``ctx.call`` to A2A agents that are not skillq: an agent written with
a2a-sdk's server classes only (tests/ext/foreign_agent.py), in its own
process, called directly, from a worker by URL, and by its registered name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import ListTasksRequest, TaskState

from tests.cli.test_cli import skillq
from worker.capabilities.http_a2a import HttpA2AClient
from worker.client import SkillClient
from worker.embedded import WorkerProcess, free_port, wait_for

HERE = Path(__file__).parent.parent  # tests/


@pytest.fixture(scope="module")
def foreign() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, str(HERE / "ext" / "foreign_agent.py"), str(port)])

    def up() -> bool:
        try:
            return httpx.get(url + "/.well-known/agent-card.json").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=30, what="the foreign agent")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def remote_states(url: str) -> dict[str, int]:
    """Task id → state, as the foreign agent reports them."""

    async def listed() -> dict[str, int]:
        client = await create_client(url, ClientConfig(streaming=False))
        try:
            found = await client.list_tasks(ListTasksRequest(page_size=100))
            return {task.id: task.status.state for task in found.tasks}
        finally:
            await client.close()

    return asyncio.run(listed())


def test_the_client_calls_a_foreign_agent(foreign: str) -> None:
    a2a = HttpA2AClient()

    async def calls() -> list[Any]:
        return [
            await a2a.call(foreign, "upper", args={"text": "shout"}),
            await a2a.call(foreign, "nope"),
            await a2a.call("ftp://elsewhere", "upper"),
            await a2a.call(f"http://127.0.0.1:{free_port()}", "upper", timeout=5),
            await a2a.call(foreign, "forever", timeout=2),
        ]

    ok, unknown, bad_scheme, unreachable, slow = asyncio.run(calls())
    assert ok.ok and ok.output == "SHOUT" and ok.state == "succeeded" and ok.task_id
    assert not unknown.ok and unknown.state == "failed" and "no skill 'nope'" in str(unknown.error)
    assert not bad_scheme.ok and "http(s)" in str(bad_scheme.error)
    assert not unreachable.ok and "cannot call" in str(unreachable.error)
    assert not slow.ok and slow.state == "cancelled" and "timed out after 2 s" in str(slow.error)
    assert remote_states(foreign)[slow.task_id] == TaskState.TASK_STATE_CANCELED


@pytest.fixture(scope="module")
def caller(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    process = start_worker(
        pool="threads", concurrency=2, queues="remote", env={"SKILLQ_SKILLS": "remote_call_skills"}
    )
    yield process
    process.stop(timeout=10)


def test_a_skill_calls_a_foreign_agent_by_url_and_by_name(
    foreign: str, caller: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    call = {"target": foreign, "skill": "upper", "args": {"text": "by url"}, "timeout": 30}
    out = client.result(client.submit("call_remote", call), timeout=60)
    assert out["ok"] and out["output"] == "BY URL", out
    added = skillq(stack_env, "agents", "add", foreign, "--json")
    assert added.returncode == 0, added.stderr
    try:
        found = client.result(client.submit("find_remote", {"tag": "text"}), timeout=60)
        assert [agent["name"] for agent in found] == ["foreign"]
        assert found[0]["url"] == foreign and "a2a" in found[0]["capabilities"]
        named = {"target": "foreign", "skill": "upper", "args": {"text": "by name"}}
        out = client.result(client.submit("call_remote", named), timeout=60)
        assert out["ok"] and out["output"] == "BY NAME", out
    finally:
        assert skillq(stack_env, "agents", "remove", "foreign").returncode == 0


def test_cancelling_the_caller_cancels_the_remote_task(
    foreign: str, caller: WorkerProcess, client: SkillClient
) -> None:
    before = set(remote_states(foreign))
    job = client.submit("call_remote", {"target": foreign, "skill": "forever", "timeout": 300})
    new = wait_for(lambda: set(remote_states(foreign)) - before, timeout=30, what="the remote task")
    [task_id] = list(new)
    assert client.cancel(job)
    wait_for(lambda: client.status(job).finished, timeout=30, what="the caller to end")
    assert client.status(job).state == "cancelled"
    wait_for(
        lambda: remote_states(foreign)[task_id] == TaskState.TASK_STATE_CANCELED,
        timeout=30,
        what="the remote task to be cancelled",
    )

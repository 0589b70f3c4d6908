"""Skills that find and call skills on real workers: discovery, child jobs,
placement without deadlocks, deadlines, depth, cancellation and scopes.

Two agents: ``planner`` (tests/ext/agent_skills.py, one pool slot, so a
child that waited for a free slot would never run) and ``helper``
(tests/ext/helper_skills.py, on its own queue: calls to it are queued).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker.client import SkillClient
from worker.embedded import WorkerProcess


@pytest.fixture(scope="module", params=["prefork", "threads"])
def agents_up(
    request: pytest.FixtureRequest, start_worker: Callable[..., WorkerProcess]
) -> Iterator[str]:
    planner = start_worker(
        pool=request.param,
        concurrency=1,
        queues="agents",
        env={
            "SKILLQ_SKILLS": "agent_skills",
            "SKILLQ_AGENT": "planner",
            "SKILLQ_AGENT_DESCRIPTION": "Plans and delegates.",
        },
    )
    helper = start_worker(
        pool="threads",
        concurrency=2,
        queues="helper",
        env={"SKILLQ_SKILLS": "helper_skills", "SKILLQ_AGENT": "helper"},
    )
    yield str(request.param)
    planner.stop(timeout=10)
    helper.stop(timeout=10)


def test_a_skill_finds_a_peer_by_tag_and_calls_it(agents_up: str, client: SkillClient) -> None:
    job = client.submit("delegate", {"tag": "remote", "call": "remote_square", "args": {"n": 7}})
    out = client.result(job, timeout=60)
    assert out["agents"] == ["helper"]
    call = out["call"]
    assert call["ok"] and call["output"] == 49 and call["state"] == "succeeded", call
    child = call["task_id"]
    status = client.status(child)
    assert status.parent == job and status.state == "succeeded" and status.skill == "remote_square"
    assert client.status(job).children == [child]
    events = list(client.events(child, timeout=30))
    assert any(e["kind"] == "progress" and "squaring 7" in str(e["payload"]) for e in events)
    assert events[-1]["payload"]["state"] == "succeeded"
    [artifact] = call["artifacts"]
    assert client.read_artifact(artifact["uri"]) == b"49"
    assert client.result(child, timeout=10) == 49


def test_a_skill_finds_a_peer_by_skill_and_the_child_runs_inline(
    agents_up: str, client: SkillClient
) -> None:
    job = client.submit("delegate", {"skill": "square", "call": "square", "args": {"n": 3}})
    out = client.result(job, timeout=60)
    assert out["agents"] == ["planner"] and out["call"]["output"] == 9
    child = out["call"]["task_id"]
    assert client.status(child).parent == job
    assert client.status(job).children == [child]
    assert [ref.name for ref in client.artifacts(child)] == ["square.txt"]


def test_a_chain_completes_on_a_worker_with_one_slot(agents_up: str, client: SkillClient) -> None:
    job = client.submit("chain", {"steps": ["chain2", "chain", "chain2"]})
    assert client.result(job, timeout=60) == ["chain2", ["chain", ["chain2", "end"]]]
    [first] = client.status(job).children
    [second] = client.status(first).children
    assert client.status(second).parent == first


def test_ten_concurrent_calls_from_one_handler(agents_up: str, client: SkillClient) -> None:
    job = client.submit("fan_out", {"count": 10})
    assert client.result(job, timeout=60) == [n * n for n in range(10)]
    children = client.status(job).children
    assert len(children) == 10 and len(set(children)) == 10
    assert all(client.status(child).state == "succeeded" for child in children)


def test_a_call_cycle_stops_at_the_depth_cap(agents_up: str, client: SkillClient) -> None:
    job = client.submit("cycle", {})
    level, depth = client.result(job, timeout=60), 0
    while level["ok"]:
        level, depth = level["output"], depth + 1
    assert depth == 8  # SKILLQ_MAX_CALL_DEPTH
    assert "SKILLQ_MAX_CALL_DEPTH=8" in level["error"] and "cycle" in level["error"]
    assert level["task_id"] is None  # refused before a ninth child existed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"target": "nobody", "skill": "square"}, "unknown agent 'nobody'"),
        ({"target": "skillq://planner", "skill": "nope"}, "agent 'planner' has no skill 'nope'"),
        ({"skill": "square", "args": {"n": "many"}}, "invalid args for skill 'square'"),
        ({"target": "helper", "skill": "remote_square", "args": {}}, "n"),
    ],
)
def test_calls_that_cannot_run_say_why(
    agents_up: str, client: SkillClient, call: dict[str, Any], message: str
) -> None:
    job = client.submit("call_one", call)
    out = client.result(job, timeout=60)
    assert out["ok"] is False and message in out["error"], out
    assert client.status(job).state == "succeeded"


@pytest.mark.parametrize(("target", "skill"), [("planner", "napper"), ("helper", "remote_napper")])
def test_a_child_past_the_timeout_is_cancelled(
    agents_up: str, client: SkillClient, target: str, skill: str
) -> None:
    call = {"target": target, "skill": skill, "args": {"seconds": 60}, "timeout": 1}
    out = client.result(client.submit("call_one", call), timeout=60)
    assert out["ok"] is False and "timed out after 1 s" in out["error"], out
    child = out["task_id"]
    wait_for(lambda: client.status(child).finished, 30, "the child to end")
    assert client.status(child).state == "cancelled"


@pytest.mark.parametrize(("target", "skill"), [("planner", "napper"), ("helper", "remote_napper")])
def test_cancelling_a_parent_cancels_its_child(
    agents_up: str, client: SkillClient, target: str, skill: str
) -> None:
    job = client.submit("call_one", {"target": target, "skill": skill, "args": {"seconds": 60}})
    children = wait_for(lambda: client.status(job).children, 30, "the child job")
    wait_for(lambda: client.status(children[0]).state == "running", 30, "the child to run")
    assert client.cancel(job)
    wait_for(lambda: client.status(job).finished, 30, "the parent to end")
    wait_for(lambda: client.status(children[0]).finished, 30, "the child to end")
    assert client.status(job).state == "cancelled"
    assert client.status(children[0]).state == "cancelled"


def test_cancelling_a_child_leaves_its_parent_running(agents_up: str, client: SkillClient) -> None:
    job = client.submit("call_one", {"skill": "napper", "args": {"seconds": 60}})
    children = wait_for(lambda: client.status(job).children, 30, "the child job")
    wait_for(lambda: client.status(children[0]).state == "running", 30, "the child to run")
    assert client.cancel(children[0])
    out = client.result(job, timeout=30)
    assert out["ok"] is False and out["state"] == "cancelled"
    assert client.status(job).state == "succeeded"


def test_a_child_runs_with_the_callers_scopes_and_no_more(
    agents_up: str, client: SkillClient
) -> None:
    scopes = ["text:read", "extra"]
    job = client.submit("call_one", {"skill": "guarded"}, auth={"scopes": scopes})
    out = client.result(job, timeout=60)
    assert out["ok"] and out["output"] == sorted(scopes), out
    refused = client.submit("call_one", {"skill": "guarded"}, auth={"scopes": ["other"]})
    out = client.result(refused, timeout=60)
    assert out["ok"] is False and "text:read" in out["error"], out
    assert client.status(refused).children == []


def test_agents_are_listed_with_their_skills_tags_and_capabilities(
    agents_up: str, client: SkillClient, stack_env: dict[str, str]
) -> None:
    [helper] = client.agents(tag="remote")
    assert helper.url == "skillq://helper" and "remote_square" in helper.skills
    assert {"call", "discover"} <= set(helper.capabilities)
    [planner] = client.agents(skill="delegate")
    assert planner.metadata["description"] == "Plans and delegates."
    assert set(planner.tags) == {"math", "planning"}
    done = skillq(stack_env, "agents", "--tag", "math", "--json")
    assert done.returncode == 0, done.stderr
    assert {"helper", "planner"} <= {agent["name"] for agent in json.loads(done.stdout)}
    job = client.submit("fan_out", {"count": 1})
    client.result(job, timeout=60)
    [child] = client.status(job).children
    shown = skillq(stack_env, "status", job).stdout + skillq(stack_env, "status", child).stdout
    assert f"children  {child}" in " ".join(shown.split("  ")) or child in shown
    assert "parent" in shown and job in shown


def test_an_operator_factory_attaches_capabilities(
    agents_up: str,
    client: SkillClient,
    start_worker: Callable[..., WorkerProcess],
    stack_env: dict[str, str],
) -> None:
    tooled = start_worker(
        pool=agents_up,
        queues="tooled",
        env={
            "SKILLQ_SKILLS": "tooled_skills",
            "SKILLQ_AGENT": "tooled",
            "SKILLQ_CAPABILITIES": "tooled_skills:attach",
        },
    )
    try:
        assert client.result(client.submit("sandboxed", {"code": "hi"}), timeout=30) == "tooled:HI"
        agent = {a.name: a for a in client.agents(capability="sandbox")}["tooled"]
        assert {"call", "discover", "sandbox"} <= set(agent.capabilities)
    finally:
        tooled.stop(timeout=10)
    for spec, message in [
        ("tooled_skills:broken", "unknown capabilities ['telepathy']"),
        ("tooled_skills:nothing_here", "cannot load SKILLQ_CAPABILITIES"),
        ("just-a-module", "must be module:factory"),
    ]:
        env = {**stack_env, "SKILLQ_SKILLS": "tooled_skills", "SKILLQ_CAPABILITIES": spec}
        process = WorkerProcess(env, pool="threads", queues="nothing").start()
        assert process.process is not None
        assert process.process.wait(60) != 0
        assert message in process.log_path.read_text()


def test_a_celery_revoke_of_a_parent_cancels_its_child(
    agents_up: str, client: SkillClient, producer: Celery
) -> None:
    call = {"target": "helper", "skill": "remote_napper", "args": {"seconds": 60}}
    job = client.submit("call_one", call)
    children = wait_for(lambda: client.status(job).children, 30, "the child job")
    wait_for(lambda: client.status(children[0]).state == "running", 30, "the child to run")
    producer.control.revoke(job)  # what Flower and `celery control revoke` send
    wait_for(lambda: client.status(children[0]).finished, 30, "the child to end")
    wait_for(lambda: client.status(job).finished, 30, "the parent to end")
    assert client.status(children[0]).state == "cancelled"
    assert client.status(job).state == "cancelled"

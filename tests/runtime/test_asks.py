"""``ctx.ask`` on real workers: the job waits input_required holding no slot,
a wrong answer is refused with the field named and the job keeps waiting,
the right one resumes it once; timeouts and cancels end it; the CLI and the
HTTP API answer too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker import InvalidArgs, LocalRunContext, NoAuth, NotWaitingForInput
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis, WorkerProcess

ENV = {"SKILLQ_SKILLS": "tasks,step_skills"}


def waiting(client: SkillClient, job: str) -> bool:
    return client.status(job).state == "input_required"


def test_a_question_frees_the_slot_and_the_answer_resumes_the_job_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-ask", env=ENV)
    counter = tmp_path / "counter"
    job = client.submit("approver", {"counter": str(counter), "amount": 5}, queue="steps-ask")
    wait_for(lambda: waiting(client, job), 30, "the question")
    asked = client.status(job).question
    assert asked is not None and asked.question == "refund 5?" and asked.number == 1
    assert asked.schema_["properties"]["approve"]["type"] == "boolean"
    assert asked.expires_at is None
    # Nothing holds the one slot meanwhile.
    other = client.submit("echo", {"message": "meanwhile"}, queue="steps-ask")
    assert client.result(other, timeout=30) == {"message": "meanwhile"}
    with pytest.raises(InvalidArgs, match="approve"):
        client.respond(job, {"approve": "maybe"})
    assert waiting(client, job)
    answered = client.respond(job, {"approve": True, "note": "fine"})
    assert answered.state in ("queued", "running", "succeeded")
    assert client.result(job, timeout=30) == {"approved": True, "note": "fine"}
    assert counter.read_text().splitlines() == ["prepare"]  # the step ran once
    with pytest.raises(NotWaitingForInput):
        client.respond(job, {"approve": False})
    states = [e["payload"]["state"] for e in client.events(job) if e["kind"] == "status"]
    assert states == ["running", "input_required", "queued", "running", "succeeded"]


def test_a_handler_that_asks_twice_gets_both_answers(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-ask", env=ENV)
    job = client.submit("asks_twice", {}, queue="steps-ask")
    for number, question, answer in ((1, "first?", True), (2, "second?", False)):
        wait_for(lambda: waiting(client, job), 30, question)
        asked = client.status(job).question
        assert asked is not None and (asked.number, asked.question) == (number, question)
        client.respond(job, {"approve": answer})
    assert client.result(job, timeout=30) == {"first": True, "second": False}


def test_an_unanswered_question_times_out_and_a_waiting_job_cancels_at_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-ask", env=ENV)
    counter = str(tmp_path / "counter")
    late = client.submit("approver", {"counter": counter, "amount": 1, "timeout": 2})
    with pytest.raises(JobFailed) as caught:
        client.result(late, timeout=30)
    assert caught.value.code == "input_timeout"
    cancelled = client.submit("approver", {"counter": counter, "amount": 2})
    wait_for(lambda: waiting(client, cancelled), 30, "the question")
    assert client.cancel(cancelled)
    assert client.status(cancelled).state == "cancelled"
    with pytest.raises(NotWaitingForInput):
        client.respond(cancelled, {"approve": True})


def test_a_child_running_inline_asks_and_its_answer_wakes_it_at_once(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, tmp_path: Path
) -> None:
    env = {**ENV, "SKILLQ_AGENT": "askers"}
    start_worker(pool="threads", concurrency=1, queues="steps-ask", env=env)
    child_args = {"counter": str(tmp_path / "counter"), "amount": 7, "timeout": 600}
    job = client.submit("asks_through_a_child", {"agent": "askers", "child": child_args})
    [child] = wait_for(lambda: client.status(job).children, 30, "the child")
    wait_for(lambda: waiting(client, child), 30, "the child's question")
    asked = client.status(child).question
    assert asked is not None and asked.question == "refund 7?"
    client.respond(child, {"approve": True, "note": "inline"})
    # Woken by the answer, long before the question's 600 s run out.
    output = {"approved": True, "note": "inline"}
    assert client.result(job, timeout=30) == {"ok": True, "output": output, "error": None}
    assert client.status(child).attempts == 2


def test_the_cli_shows_the_question_and_answers_it(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    start_worker(pool="threads", concurrency=1, queues="steps-ask", env=ENV)
    job = client.submit("approver", {"counter": str(tmp_path / "c"), "amount": 9})
    wait_for(lambda: waiting(client, job), 30, "the question")
    shown = skillq(stack_env, "status", job)
    assert "refund 9?" in shown.stdout and "input_required" in shown.stdout
    wrong = skillq(stack_env, "respond", job, "--args", '{"approve": 3}')
    assert wrong.returncode == 2 and "approve" in wrong.stderr
    done = skillq(stack_env, "respond", job, "--args", '{"approve": false}', "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == job
    assert client.result(job, timeout=30) == {"approved": False, "note": ""}


def test_local_asks_are_answered_from_a_dict_or_a_callback() -> None:
    class Yes(BaseModel):
        yes: bool

    async def handler(ctx: LocalRunContext[NoAuth]) -> bool:
        return bool((await ctx.ask("sure?", schema=Yes)).yes)

    assert asyncio.run(handler(LocalRunContext(auth=NoAuth(), answers={"sure?": {"yes": True}})))
    ctx = LocalRunContext(auth=NoAuth(), answers=lambda question: {"yes": False})
    assert asyncio.run(handler(ctx)) is False and ctx.asked == ["sure?"]
    with pytest.raises(LookupError, match="answers"):
        asyncio.run(handler(LocalRunContext(auth=NoAuth())))


def test_a_redis_restart_while_waiting_keeps_the_question_and_the_answer(
    start_worker: Callable[..., WorkerProcess], settings: Settings, tmp_path: Path
) -> None:
    with EmbeddedRedis(appendonly=True, directory=tmp_path / "redis") as server:
        env = {**ENV, "SKILLQ_BROKER_URL": server.url}
        start_worker(
            pool="threads", concurrency=1, queues="steps-ask", env=env, ready_url=server.url
        )
        with SkillClient(settings.model_copy(update={"broker_url": server.url})) as client:
            job = client.submit("approver", {"counter": str(tmp_path / "c"), "amount": 3})
            wait_for(lambda: waiting(client, job), 30, "the question")
            server.restart()
            asked = client.status(job).question
            assert asked is not None and asked.question == "refund 3?"
            client.respond(job, {"approve": True})
            server.restart()
            assert client.result(job, timeout=60) == {"approved": True, "note": ""}

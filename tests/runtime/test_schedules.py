"""Schedules on real workers: one job per due time however many workers fire,
removal and pause stop it, a deployment that was down catches up with one
job, not a burst, and the command line pages them and refuses a cron that
never fires."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable

from pydantic import TypeAdapter

from tests.cli.test_cli import skillq
from tests.conftest import wait_for
from worker import SchedulePage
from worker.client import AsyncSkillClient, SkillClient
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.store.job_status import JobStatus
from worker.store.schedules import ScheduleInfo


def made_by(client: SkillClient, name: str) -> list[JobStatus]:
    page = client.jobs(skill="echo", limit=500)
    return [job for job in page.jobs if job.schedule == name]


def settle(seconds: float) -> None:
    """Let the clock pass ``seconds`` (the schedule's own time is what is tested)."""
    until = time.time() + seconds
    wait_for(lambda: time.time() >= until, seconds + 5, f"{seconds} s to pass")


def test_three_workers_make_one_job_per_due_time(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    name = f"tick-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        start_worker(pool="threads", concurrency=2, queues="scheduled")
    made = client.schedule(name, "echo", {"message": "tick"}, every=2, queue="scheduled")
    assert made.next_run_at is not None and made.next_run_at > time.time()
    settle(12)
    assert client.unschedule(name)
    jobs = made_by(client, name)
    assert 5 <= len(jobs) <= 7, len(jobs)
    due_times = sorted(job.scheduled_for or 0 for job in jobs)
    assert len(set(due_times)) == len(jobs)
    assert all(round(b - a, 6) == 2.0 for a, b in itertools.pairwise(due_times))
    for job in jobs:
        assert client.result(job.id, timeout=60) == {"message": "tick"}
    count = len(made_by(client, name))
    settle(3)
    assert len(made_by(client, name)) == count, "a removed schedule made a job"
    assert name not in [s.name for s in client.schedules(limit=1000)]


def test_a_paused_schedule_makes_nothing_until_resumed(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    name = f"pausing-{uuid.uuid4().hex[:8]}"
    start_worker(pool="threads", concurrency=2, queues="scheduled-pause")
    client.schedule(name, "echo", {"message": "p"}, every=1, queue="scheduled-pause")
    wait_for(lambda: len(made_by(client, name)) >= 1, 30, "the first job")
    assert client.pause_schedule(name)
    listed = client.schedule_info(name)
    assert listed is not None
    assert listed.paused and listed.last_job is not None
    count = len(made_by(client, name))
    settle(3)
    assert len(made_by(client, name)) == count
    assert client.resume_schedule(name)
    wait_for(lambda: len(made_by(client, name)) > count, 30, "a job after resuming")
    assert client.unschedule(name)
    assert not client.pause_schedule(name) and not client.unschedule(name)


def test_a_deployment_that_was_down_catches_up_with_one_job(
    start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    """A deployment of its own (key prefix), so no other test's worker fires it."""
    prefix, queue = f"sched{uuid.uuid4().hex[:6]}", "scheduled-down"
    env = {"SKILLQ_KEY_PREFIX": prefix}
    name = "catching"
    with SkillClient(settings.model_copy(update={"key_prefix": prefix})) as client:
        first = start_worker(
            pool="threads", concurrency=1, queues=queue, env=env, ready_prefix=prefix
        )
        client.schedule(name, "echo", {"message": "c"}, every=2, queue=queue)
        wait_for(lambda: len(made_by(client, name)) >= 1, 30, "the first job")
        first.stop()
        stopped = time.time()
        settle(10)  # five due times pass with no worker up
        start_worker(pool="threads", concurrency=1, queues=queue, env=env, ready_prefix=prefix)
        ready = time.time()  # its first look for due schedules is at most 0.5 s away
        wait_for(
            lambda: any((j.scheduled_for or 0) > stopped for j in made_by(client, name)),
            30,
            "the catch-up job",
        )
        assert client.unschedule(name)
        window = (stopped, ready + 0.6)
        missed = [
            j for j in made_by(client, name) if window[0] < (j.scheduled_for or 0) <= window[1]
        ]
        assert len(missed) == 1, [j.scheduled_for for j in missed]  # not one per missed time
        assert (missed[0].scheduled_for or 0) > ready - 2.5  # the latest of them


def test_schedules_from_the_command_line(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str]
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cron = ["--cron", "0 9 * * *", "--timezone", "Europe/Berlin"]
    added = skillq(stack_env, "schedule", "add", name, "echo", "--args", "{}", *cron)
    assert added.returncode == 0 and f"{name}: next run" in added.stdout, added.stderr
    listed = skillq(stack_env, "schedule", "ls")
    assert name in listed.stdout and "cron '0 9 * * *'" in listed.stdout
    assert skillq(stack_env, "schedule", "pause", name).returncode == 0
    assert "paused" in skillq(stack_env, "schedule", "ls").stdout
    assert skillq(stack_env, "schedule", "resume", name).returncode == 0
    assert skillq(stack_env, "schedule", "rm", name).returncode == 0
    gone = skillq(stack_env, "schedule", "rm", name)
    assert gone.returncode == 4 and "no schedule named" in gone.stderr
    bad = skillq(stack_env, "schedule", "add", name, "echo", "--every", "2", "--cron", "* * * * *")
    assert bad.returncode == 2 and "not both" in bad.stderr
    unknown = skillq(stack_env, "schedule", "add", name, "nope", "--every", "2")
    assert unknown.returncode == 2 and "unknown skill" in unknown.stderr


def test_the_command_line_pages_schedules_and_refuses_a_cron_that_never_fires(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str], settings: Settings
) -> None:
    """Before: ``schedule ls`` listed every schedule at once, and a cron no date
    matches ended with croniter's bare "failed to find next date" (exit 1).
    ``--json`` still prints a list, as scripts read it before paging."""
    prefix = f"paged{uuid.uuid4().hex[:6]}"
    env = {**stack_env, "SKILLQ_KEY_PREFIX": prefix}
    start_worker(pool="threads", concurrency=1, queues="paged", env=env, ready_prefix=prefix)
    never = skillq(env, "schedule", "add", "never", "echo", "--cron", "0 0 31 2 *")
    assert never.returncode == 2, (never.stdout, never.stderr)
    assert "cron '0 0 31 2 *' never fires" in never.stderr and "Traceback" not in never.stderr
    with SkillClient(settings.model_copy(update={"key_prefix": prefix})) as client:
        for name in ("a", "b", "c"):
            client.schedule(name, "echo", every=3600, queue="paged", owner="dora")
        client.schedule("d", "echo", every=3600, queue="paged")
    first = skillq(env, "schedule", "ls", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["a", "b"]
    assert "more: --cursor b" in first.stderr
    rest = skillq(env, "schedule", "ls", "--limit", "2", "--cursor", "b")
    assert [line.split()[0] for line in rest.stdout.splitlines()] == ["c", "d"]
    assert "more:" not in rest.stderr
    # --json prints the list it printed before paging; the cursor goes to stderr.
    dora = skillq(env, "schedule", "ls", "--owner", "dora", "--json")
    assert [item["name"] for item in json.loads(dora.stdout)] == ["a", "b", "c"]
    assert "more:" not in dora.stderr
    paged = skillq(env, "schedule", "ls", "--limit", "3", "--json")
    assert [item["name"] for item in json.loads(paged.stdout)] == ["a", "b", "c"]
    assert "more: --cursor c" in paged.stderr


def test_schedules_is_the_list_it_was_with_the_next_pages_cursor(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str], settings: Settings
) -> None:
    """Before: ``schedules()`` returned a page object, so ``schedules()[0]``,
    ``len``, ``== [...]`` and ``for ... in`` on its result, as written against
    the list it returned until paging came, failed (both clients)."""
    prefix = f"aslist{uuid.uuid4().hex[:6]}"
    env = {**stack_env, "SKILLQ_KEY_PREFIX": prefix}
    start_worker(pool="threads", concurrency=1, queues="aslist", env=env, ready_prefix=prefix)
    mine = settings.model_copy(update={"key_prefix": prefix})
    with SkillClient(mine) as client:
        assert client.schedules() == [] and client.schedules().cursor is None
        made = [
            client.schedule(name, "echo", every=3600, queue="aslist") for name in ("a", "b", "c")
        ]
        listed = client.schedules()
        assert isinstance(listed, list) and isinstance(listed, SchedulePage)
        assert listed == made and made == listed and len(listed) == 3
        assert listed[0].name == "a" and [s.name for s in listed[1:]] == ["b", "c"]
        assert [item.name for item in listed] == ["a", "b", "c"] and listed.cursor is None
        as_list = TypeAdapter(list[ScheduleInfo])
        assert as_list.dump_json(listed) == as_list.dump_json(made)
        assert json.loads(json.dumps(listed, default=lambda m: m.model_dump(mode="json"))) == [
            m.model_dump(mode="json") for m in made
        ]
        first = client.schedules(limit=2)
        assert first == made[:2] and first.cursor == "b"
        rest = client.schedules(limit=2, cursor=first.cursor)
        assert rest == made[2:] and rest.cursor is None

    async def listed_async() -> tuple[list[ScheduleInfo], str | None, list[ScheduleInfo]]:
        async with AsyncSkillClient(mine) as aclient:
            first = await aclient.schedules(limit=2)
            rest = await aclient.schedules(cursor=first.cursor)
            return first, first.cursor, rest

    head, cursor, tail = asyncio.run(listed_async())
    assert head == made[:2] and cursor == "b" and tail == made[2:]
    assert head[1].name == "b" and len(tail) == 1

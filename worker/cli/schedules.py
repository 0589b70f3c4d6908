"""``skillq schedule``: jobs every N seconds or on a cron expression, fired
by whichever worker is up (one job per due time)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import typer

from ..store.schedules import ScheduleInfo
from .support import JsonFlag, emit_json, err, make_client, out, parse_json

schedule_cli = typer.Typer(
    no_args_is_help=True, help="Schedules: run a skill every N seconds or on a cron expression."
)


def shown_time(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def described(item: ScheduleInfo) -> dict[str, object]:
    return {
        **item.spec.model_dump(exclude={"anchor"}),
        "paused": item.paused,
        "next_run_at": item.next_run_at,
        "last_run_at": item.last_run_at,
        "last_job": item.last_job,
    }


@schedule_cli.command("add")
def add(
    name: str,
    skill: str,
    args: Annotated[str | None, typer.Option("--args", help="The job's args (JSON).")] = None,
    every: Annotated[float | None, typer.Option("--every", help="Seconds between runs.")] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="A cron expression, e.g. '*/5 * * * *'.")
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="The cron's time zone (IANA name).")
    ] = "UTC",
    queue: Annotated[str | None, typer.Option("--queue", "-Q")] = None,
    catch_up: Annotated[
        Literal["one", "all", "none"],
        typer.Option("--catch-up", help="Due times missed while no worker was up: one, all, none."),
    ] = "one",
    priority: Annotated[
        int | None, typer.Option("--priority", help="0-9, 9 the most urgent.")
    ] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="The jobs' claims (JSON).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or replace the schedule NAME running SKILL."""
    with make_client() as client:
        made = client.schedule(
            name,
            skill,
            parse_json("--args", args),
            every=every,
            cron=cron,
            timezone=timezone,
            queue=queue,
            catch_up=catch_up,
            priority=priority,
            auth=parse_json("--auth", auth),
        )
    if as_json:
        emit_json(described(made))
        return
    out.print(f"{made.name}: next run {shown_time(made.next_run_at)}", highlight=False)


@schedule_cli.command("ls")
def listed(
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor", help="From a previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Schedules by name, with their next and last run (one page; --cursor goes on)."""
    with make_client() as client:
        page = client.schedules(owner=owner, limit=limit, cursor=cursor)
    if as_json:  # the list it printed before paging; the cursor is on stderr
        emit_json([described(item) for item in page])
    else:
        for item in page:
            every = item.spec.every
            when = f"every {every:g} s" if every else f"cron {item.spec.cron!r}"
            state = "paused" if item.paused else f"next {shown_time(item.next_run_at)}"
            last = f"last {shown_time(item.last_run_at)} ({item.last_job})" if item.last_job else ""
            out.print(f"{item.name}\t{item.spec.skill}\t{when}\t{state}\t{last}", highlight=False)
    if page.cursor:
        err.print(f"more: --cursor {page.cursor}", highlight=False)


def _named(action: str, done: bool, name: str) -> None:
    if not done:
        err.print(f"no schedule named {name!r}", highlight=False)
        raise typer.Exit(4)
    out.print(f"{name}: {action}", highlight=False)


@schedule_cli.command("rm")
def remove(name: str) -> None:
    """Remove a schedule (jobs it made are kept)."""
    with make_client() as client:
        _named("removed", client.unschedule(name), name)


@schedule_cli.command("pause")
def pause(name: str) -> None:
    """Stop firing a schedule until it is resumed."""
    with make_client() as client:
        _named("paused", client.pause_schedule(name), name)


@schedule_cli.command("resume")
def resume(name: str) -> None:
    """Fire a paused schedule again, from its next due time."""
    with make_client() as client:
        _named("resumed", client.resume_schedule(name), name)

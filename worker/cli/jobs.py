"""``skillq`` commands about jobs: submit, status, result, watch, logs, cancel,
artifacts, and the listing."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ..client.sync import SkillClient
from ..core.errors import InvalidArgs, SkillqError
from .app import cli
from .support import JsonFlag, emit_json, err, fail, make_client, out, parse_json


@cli.command()
def submit(
    skill: str,
    args: Annotated[str | None, typer.Option("--args", help="Args as a JSON object.")] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="Auth as a JSON object.")] = None,
    queue: Annotated[str | None, typer.Option("--queue")] = None,
    job_id: Annotated[str | None, typer.Option("--job-id")] = None,
    grant: Annotated[
        str | None, typer.Option("--grant", help="A workspace grant token for the job.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Submitting the same key again returns its job."),
    ] = None,
    countdown: Annotated[
        float | None, typer.Option("--countdown", help="Start no sooner than S seconds from now.")
    ] = None,
    eta: Annotated[
        str | None, typer.Option("--eta", help="Start no sooner than this ISO 8601 time.")
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option("--priority", min=0, max=9, help="0 (default) to 9, the most urgent."),
    ] = None,
    concurrency_key: Annotated[
        str | None,
        typer.Option("--concurrency-key", help="Counts toward the skill's key_concurrency."),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit", help="Seconds the job may run (at most the skill's own limit)."
        ),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Who the job belongs to (quotas count it).")
    ] = None,
    budget: Annotated[
        list[str] | None,
        typer.Option("--budget", help="What it may spend: UNIT=AMOUNT (repeatable), e.g. usd=0.5."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    watch_: Annotated[bool, typer.Option("--watch", help="Follow events live.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", help="With --wait/--watch: seconds to wait (the job goes on after)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue a job and print its id (or, with --wait/--watch, its outcome)."""
    parsed_args = parse_json("--args", args)
    parsed_auth = parse_json("--auth", auth)
    with make_client() as client:
        new_id = client.submit(
            skill,
            parsed_args,
            auth=parsed_auth,
            queue=queue,
            job_id=job_id,
            grant=grant,
            idempotency_key=idempotency_key,
            countdown=countdown,
            eta=None if eta is None else parse_eta(eta),
            priority=priority,
            concurrency_key=concurrency_key,
            time_limit=time_limit,
            budget=parse_budget(budget),
            owner=owner,
        )
        if watch_:
            follow(client, new_id, timeout, as_json)
        elif wait:
            print_result(client, new_id, timeout, as_json)
        elif as_json:
            emit_json({"job_id": new_id})
        else:
            out.print(new_id, highlight=False)


def parse_budget(items: list[str] | None) -> dict[str, float] | None:
    """``["usd=0.5", "tokens=2e5"]`` as ``{"usd": 0.5, "tokens": 200000.0}``."""
    if not items:
        return None
    found: dict[str, float] = {}
    for item in items:
        unit, _, amount = item.partition("=")
        try:
            found[unit.strip()] = float(amount)
        except ValueError:
            raise InvalidArgs("budget", f"--budget takes UNIT=AMOUNT, not {item!r}") from None
    return found


def parse_eta(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"error: --eta takes an ISO 8601 time, not {text!r}", highlight=False)
        raise typer.Exit(2) from None
    return when if when.tzinfo else when.astimezone()  # a local time, as written


@cli.command()
def status(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a job's state, timestamps, worker, attempts and progress."""
    with make_client() as client:
        current = client.status(job_id)
    if as_json:
        emit_json(current.model_dump(mode="json"))
        return
    from ..client.display import status_table

    out.print(status_table(current))


def print_result(client: SkillClient, job_id: str, timeout: float | None, as_json: bool) -> None:
    try:
        value = client.result(job_id, timeout)
    except Exception as exc:
        if as_json and isinstance(exc, SkillqError | TimeoutError):
            emit_json({"job_id": job_id, "error": type(exc).__name__, "message": str(exc)})
        fail(exc)
    if as_json:
        emit_json({"job_id": job_id, "result": value})
    else:
        out.print_json(json.dumps(value))


@cli.command()
def result(
    job_id: str,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds to wait.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a job and print its result."""
    with make_client() as client:
        print_result(client, job_id, timeout, as_json)


def follow(client: SkillClient, job_id: str, timeout: float | None, as_json: bool) -> None:
    from ..client.display import watch_events

    if as_json:
        for envelope in client.events(job_id, timeout=timeout):
            emit_json(envelope)
    else:
        watch_events(out, job_id, client.events(job_id, timeout=timeout))
    final = client.status(job_id)
    if final.state == "failed":
        raise typer.Exit(1)
    if final.state == "cancelled":
        raise typer.Exit(3)


@cli.command()
def watch(
    job_id: str,
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Follow a job's events live: progress, streamed text, artifacts, status."""
    with make_client() as client:
        follow(client, job_id, timeout, as_json)


@cli.command()
def logs(
    job_id: str,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the lines a job's handler logged (one JSON object per line with --json)."""
    import datetime

    from ..client.display import terminal_safe

    with make_client() as client:
        for line in client.logs(job_id, follow=follow_, timeout=timeout):
            if as_json:
                emit_json(line.model_dump())
                continue
            when = datetime.datetime.fromtimestamp(line.ts, datetime.UTC)
            stamp = when.isoformat(timespec="milliseconds")
            sys.stdout.write(f"{stamp} {terminal_safe(str(line))}\n")


@cli.command()
def cancel(job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    with make_client() as client:
        accepted = client.cancel(job_id)
    if as_json:
        emit_json({"job_id": job_id, "cancelled": accepted})
    elif accepted:
        out.print(f"cancel requested for {job_id}", highlight=False)
    else:
        out.print(f"{job_id} had already finished; nothing changed", highlight=False)


@cli.command()
def respond(
    job_id: str,
    args: Annotated[str, typer.Option("--args", help="The answer (JSON).")],
    as_json: JsonFlag = False,
) -> None:
    """Answer the question a job waits on (state input_required; `skillq status` shows it)."""
    try:
        answer = json.loads(args)
    except ValueError as exc:
        raise InvalidArgs("?", f"--args is not JSON: {exc}") from exc
    except RecursionError:  # the decoder recurses: far past SKILLQ_MAX_ARGS_DEPTH
        raise InvalidArgs("?", "--args nests too deep to decode (SKILLQ_MAX_ARGS_DEPTH)") from None
    with make_client() as client:
        status = client.respond(job_id, answer)
    if as_json:
        emit_json(status.model_dump(mode="json", by_alias=True))
    else:
        out.print(f"answered {job_id}: it is {status.state}", highlight=False)


@cli.command()
def retry(
    job_id: str,
    auth: Annotated[str | None, typer.Option("--auth", help="Auth claims (JSON).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and print the result.")] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="With --wait: seconds to wait.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run an ended job again as a new job (same skill, args, queue and priority),
    linked to it both ways; print the new job's id."""
    with make_client() as client:
        new_id = client.retry(job_id, auth=parse_json("--auth", auth))
        if wait:
            print_result(client, new_id, timeout, as_json)
        elif as_json:
            emit_json({"job_id": new_id, "retry_of": job_id})
        else:
            out.print(new_id, highlight=False)


@cli.command()
def artifacts(
    job_id: str,
    download: Annotated[
        Path | None, typer.Option("--download", help="Save every artifact under DIR.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List a job's artifacts, or download them."""
    with make_client() as client:
        refs = client.artifacts(job_id)
        saved: list[str] = []
        if download is not None:
            from ..store.artifacts import validate_name

            for ref in refs:
                target = download / validate_name(ref.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(client.read_artifact(ref))
                saved.append(str(target))
    if as_json:
        emit_json(
            [
                {
                    "name": r.name,
                    "uri": r.uri,
                    "mime_type": r.mime_type,
                    "size_bytes": r.size_bytes,
                }
                for r in refs
            ]
        )
        return
    for ref in refs:
        out.print(f"{ref.name}\t{ref.size_bytes}\t{ref.mime_type}\t{ref.uri}", highlight=False)
    for path in saved:
        out.print(f"saved {path}", highlight=False)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` ago, or an ISO 8601 time: Unix seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if found:
        return time.time() - float(found.group(1)) * UNITS[found.group(2)]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        err.print(f"error: --since takes 30m, 1h, 2d or an ISO time, not {text!r}", highlight=False)
        raise typer.Exit(2) from None


@cli.command("jobs")
def jobs(
    skill: Annotated[str | None, typer.Option("--skill", help="Only this skill's jobs.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="queued, running, succeeded, failed, cancelled")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="e.g. 1h, 2d, or ISO time")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="From a previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first (one page; --cursor goes on)."""
    after = None if since is None else parse_since(since)
    with make_client() as client:
        page = client.jobs(skill=skill, state=state, since=after, limit=limit, cursor=cursor)
    if as_json:
        emit_json(page.model_dump(mode="json"))
        return
    for job in page.jobs:
        created = datetime.fromtimestamp(job.created_at or 0).isoformat(timespec="seconds")
        out.print(f"{job.id}\t{job.state}\t{job.skill}\t{created}", highlight=False)
    if page.cursor:
        err.print(f"more: --cursor {page.cursor}", highlight=False)

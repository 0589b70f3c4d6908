"""The ``skillq`` command line.

Every command maps errors through :data:`worker.errors.ERROR_TABLE`, so exit
codes are the same wherever an error comes from: 0 succeeded, 1 job failed,
2 invalid input, 3 cancelled, 4 not found, 5 timed out, 6 Redis or storage
unreachable.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import redis
import typer

from .cli_jobs import jobs
from .cli_server import serve, token_cli
from .cli_support import JsonFlag, emit_json, err, fail, make_client, out, parse_json
from .cli_workspace import workspace_cli
from .client.sync import SkillClient
from .core.errors import SkillqError
from .core.keys import Keys
from .core.settings import Settings

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run agent skills on Celery workers: submit, watch, cancel, fetch artifacts.",
)
cli.add_typer(workspace_cli, name="workspace")
cli.add_typer(token_cli, name="token")
cli.command("serve")(serve)
cli.command("jobs")(jobs)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    pool: Annotated[str, typer.Option("--pool", "-P", help="prefork, threads or solo")] = "prefork",
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c")] = None,
    queues: Annotated[str | None, typer.Option("--queues", "-Q")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Start a worker; extra options go to `celery worker` unchanged."""
    from .runtime.app import create_worker_app

    argv = ["worker", "--pool", pool, "--loglevel", loglevel]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if queues:
        argv += ["--queues", queues]
    try:
        app = create_worker_app(Settings())
    except SkillqError as exc:
        fail(exc)
    app.worker_main(argv=[*argv, *ctx.args])


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
        try:
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
            )
        except Exception as exc:
            fail(exc)
        if watch_:
            follow(client, new_id, timeout, as_json)
        elif wait:
            print_result(client, new_id, timeout, as_json)
        elif as_json:
            emit_json({"job_id": new_id})
        else:
            out.print(new_id, highlight=False)


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
        try:
            current = client.status(job_id)
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json(current.model_dump(mode="json"))
        return
    from .client.display import status_table

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
    from .client.display import watch_events

    try:
        if as_json:
            for envelope in client.events(job_id, timeout=timeout):
                emit_json(envelope)
        else:
            watch_events(out, job_id, client.events(job_id, timeout=timeout))
        final = client.status(job_id)
    except Exception as exc:
        fail(exc)
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

    from .client.display import terminal_safe

    with make_client() as client:
        try:
            for line in client.logs(job_id, follow=follow_, timeout=timeout):
                if as_json:
                    emit_json(line.model_dump())
                    continue
                when = datetime.datetime.fromtimestamp(line.ts, datetime.UTC)
                stamp = when.isoformat(timespec="milliseconds")
                sys.stdout.write(f"{stamp} {terminal_safe(str(line))}\n")
        except Exception as exc:
            fail(exc)


@cli.command()
def cancel(job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job."""
    with make_client() as client:
        try:
            accepted = client.cancel(job_id)
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json({"job_id": job_id, "cancelled": accepted})
    elif accepted:
        out.print(f"cancel requested for {job_id}", highlight=False)
    else:
        out.print(f"{job_id} had already finished; nothing changed", highlight=False)


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
        try:
            refs = client.artifacts(job_id)
            saved: list[str] = []
            if download is not None:
                from .core.artifacts import validate_name

                for ref in refs:
                    target = download / validate_name(ref.name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(client.read_artifact(ref))
                    saved.append(str(target))
        except Exception as exc:
            fail(exc)
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


@cli.command()
def skills(as_json: JsonFlag = False) -> None:
    """List the skills running workers serve."""
    with make_client() as client:
        try:
            found = client.skills()
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json([item.model_dump(mode="json") for item in found])
        return
    from .client.display import skills_table

    out.print(skills_table(found))


agents_cli = typer.Typer(help="Agents: list them, register or remove remote A2A agents.")
cli.add_typer(agents_cli, name="agents")


@agents_cli.callback(invoke_without_command=True)
def agents(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option("--tag", help="Only agents with this tag.")] = None,
    skill: Annotated[str | None, typer.Option("--skill", help="Only agents with it.")] = None,
    capability: Annotated[
        str | None, typer.Option("--capability", help="Only agents that offer it.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the agents ctx.discover finds: live ones, then registered remote ones."""
    if ctx.invoked_subcommand is not None:
        return
    with make_client() as client:
        try:
            found = client.agents(tag=tag, skill=skill, capability=capability)
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json([dataclasses.asdict(item) for item in found])
        return
    from .client.display import agents_table

    out.print(agents_table(found))


@agents_cli.command("add")
def add_agent(
    url: str,
    name: Annotated[str | None, typer.Option("--name", help="Register under this name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register the A2A agent whose card is at URL, so ctx.discover finds it and
    ctx.call(<its name>, ...) reaches it over A2A."""
    with make_client() as client:
        try:
            added = client.add_remote_agent(url, name=name)
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json(dataclasses.asdict(added))
    else:
        out.print(f"added agent {added.name} at {added.url}: {', '.join(added.skills)}")


@agents_cli.command("remove")
def remove_agent(name: str) -> None:
    """Forget a registered remote agent."""
    with make_client() as client:
        if not client.remove_remote_agent(name):
            err.print(f"no remote agent named {name!r}", highlight=False)
            raise typer.Exit(4)
    out.print(f"removed agent {name}")


@cli.command()
def demo(
    pool: Annotated[str, typer.Option("--pool", "-P")] = "threads",
    words: Annotated[int, typer.Option("--words")] = 24,
) -> None:
    """Run a worker and a sample job end to end on an embedded Redis."""
    from .embedded.demo import run_demo

    try:
        code = run_demo(out, pool=pool, words=words)
    except Exception as exc:
        fail(exc)
    raise typer.Exit(code)


def backlog_clients() -> tuple[redis.Redis, redis.Redis, Keys]:
    """The broker (queue lists), skillq's Redis (counters, registry) and the key names."""
    settings = Settings()
    return (
        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5),
        redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=5),
        Keys(settings.key_prefix),
    )


@cli.command("queue-depth")
def queue_depth(
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-Q", help="Queue to report (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Backlog per queue: jobs queued plus jobs workers hold (the autoscaling figure)."""
    from .client.backlog import queue_depths

    try:
        depths = queue_depths(*backlog_clients(), list(queue or []))
    except Exception as exc:
        fail(exc)
    if as_json:
        emit_json({d.queue: d.as_dict() for d in depths})
        return
    for depth in depths:
        out.print(
            f"{depth.queue}\tbacklog {depth.backlog}\tqueued {depth.queued}\ttaken {depth.taken}",
            highlight=False,
        )


@cli.command()
def exporter(
    port: Annotated[int, typer.Option("--port")] = 9808,
    host: Annotated[str, typer.Option("--host")] = "0.0.0.0",  # noqa: S104 (a server)
    queue: Annotated[list[str] | None, typer.Option("--queue", "-Q")] = None,
) -> None:
    """Serve the backlog for autoscalers: /metrics (Prometheus), /backlog (JSON)."""
    from .server.exporter import make_server

    broker, records, keys = backlog_clients()
    server = make_server(host, port, broker, records, keys, list(queue or []))
    err.print(f"skillq exporter on http://{host}:{server.server_port}/metrics", highlight=False)
    try:
        server.serve_forever()
    finally:
        server.server_close()


@cli.command()
def health(
    hostname: Annotated[
        str | None, typer.Option("--hostname", "-n", help="Worker node name.")
    ] = None,
) -> None:
    """Exit 0 if the worker HOSTNAME (default celery@<host>) is alive and Redis keeps data.

    Fails (exit 2) when Redis would evict queued jobs or records, and warns
    when it would lose them on a restart.
    """
    import socket

    from .core.redis_config import check_redis
    from .core.registry import is_alive

    settings = Settings()
    node = hostname or f"celery@{socket.gethostname()}"
    try:
        warnings = check_redis([settings.broker_url, settings.effective_redis_url])
        client = redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=5)
        alive = is_alive(client, Keys(settings.key_prefix), node)
    except Exception as exc:
        fail(exc)
    for warning in warnings:
        err.print(f"warning: {warning}", highlight=False)
    if not alive:
        err.print(f"worker {node} has no live heartbeat in Redis", highlight=False)
        raise typer.Exit(1)
    out.print(f"worker {node} is alive", highlight=False)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

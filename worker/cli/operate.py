"""``skillq`` commands for operators: run a worker, the demo, the backlog,
the exporter and the health check."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, Any

import redis
import typer

from ..core.settings import Settings
from ..store.connections import probe_redis
from ..store.keys import Keys
from .app import cli
from .support import JsonFlag, emit_json, err, out


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    pool: Annotated[
        str, typer.Option("--pool", "-P", help="prefork, threads, solo or async")
    ] = "prefork",
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c")] = None,
    queues: Annotated[str | None, typer.Option("--queues", "-Q")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Start a worker; extra options go to `celery worker` unchanged."""
    from ..runtime.app import create_worker_app
    from ..runtime.async_pool import POOL as ASYNC_POOL

    # As `python -m` and `celery` do: skill modules in this folder are found.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # Celery's --pool takes only the pools it knows: the async pool is configured.
    argv = ["worker", *(["--pool", pool] if pool != "async" else []), "--loglevel", loglevel]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if queues:
        argv += ["--queues", queues]
    app = create_worker_app(Settings())
    if pool == "async":
        app.conf.worker_pool = ASYNC_POOL
    app.worker_main(argv=[*argv, *ctx.args])


@cli.command()
def demo(
    pool: Annotated[str, typer.Option("--pool", "-P")] = "threads",
    words: Annotated[int, typer.Option("--words")] = 24,
) -> None:
    """Run a worker and a sample job end to end on an embedded Redis."""
    from ..embedded.demo import run_demo

    code = run_demo(out, pool=pool, words=words)
    raise typer.Exit(code)


@cli.command()
def dev(
    skills: Annotated[
        str | None, typer.Option("--skills", help="Skill modules (default: SKILLQ_SKILLS).")
    ] = None,
    pool: Annotated[str, typer.Option("--pool", "-P")] = "threads",
    concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 4,
) -> None:
    """A Redis (the one at SKILLQ_BROKER_URL, started here if none answers) and a
    worker serving your skill modules from this folder; Ctrl-C stops both."""
    from pathlib import Path

    from ..embedded.dev import dev_redis
    from ..runtime.app import create_worker_app

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    settings = Settings()
    if skills:
        settings = settings.model_copy(update={"skills": skills})
    local = dev_redis(settings.broker_url, Path.home() / ".skillq" / "dev" / "redis")
    where = "started here" if local.server else "already running"
    err.print(
        f"skillq dev: Redis at {local.url} ({where}); a worker serving {settings.skills}. "
        "Ctrl-C stops both.",
        highlight=False,
    )
    app = create_worker_app(settings)
    argv = ["worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO"]
    try:
        app.worker_main(argv=argv)
    finally:
        local.stop()


def backlog_clients() -> tuple[redis.Redis, redis.Redis, Keys]:
    """The broker (queue lists), skillq's Redis (counters, registry) and the key names."""
    settings = Settings()
    return (
        probe_redis(settings.broker_url, 5.0, settings=settings),
        probe_redis(settings.effective_redis_url, 5.0, settings=settings),
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
    from ..client.backlog import queue_depths

    depths = queue_depths(*backlog_clients(), list(queue or []))
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
    from ..server.exporter import make_server

    broker, records, keys = backlog_clients()
    server = make_server(host, port, broker, records, keys, list(queue or []))
    err.print(f"skillq exporter on http://{host}:{server.server_port}/metrics", highlight=False)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def sentinel_view_of(settings: Settings) -> dict[str, Any] | None:
    """The sentinels' view of skillq's Redis, when it is reached through them."""
    from ..store import sentinels

    if not sentinels.is_sentinel(settings.effective_redis_url):
        return None
    return sentinels.sentinel_view(settings, settings.effective_redis_url)


def describe_sentinels(view: dict[str, Any]) -> str:
    replicas = ", ".join(f"{r['address']} ({r['flags']})" for r in view["replicas"]) or "none"
    lines = [f"primary '{view['master']}': {view['primary'] or 'unknown'}; replicas: {replicas}"]
    for entry in view["sentinels"]:
        said = entry.get("error") or f"names {entry.get('primary')}"
        lines.append(f"  sentinel {entry['address']}: {said}")
    return "\n".join(lines)


@cli.command()
def health(
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname", "-n", help="The worker's node name (default: any on this host)."
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the worker to come up.")
    ] = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Exit 0 if a worker is alive (the node HOSTNAME, else any worker on this host)
    and Redis keeps data: a container's health check.

    Fails (exit 2) when Redis would evict queued jobs or records, exit 1 when
    no such worker renews its heartbeat; warns when Redis would lose data on a
    restart, and when the artifact store refuses skillq or cannot be reached.
    """
    import socket

    from ..core.errors import ArtifactStoreUnavailable
    from ..store.artifacts import open_store
    from ..store.redis_config import check_redis
    from ..store.registry import live_workers

    settings = Settings()
    deadline = time.monotonic() + max(0.0, wait)
    if wait > 0:  # a worker starting now may be starting its Redis too
        from ..embedded.dev import answers

        url = settings.effective_redis_url
        while not answers(url, settings) and time.monotonic() < deadline:
            time.sleep(0.2)
    warnings = check_redis([settings.broker_url, settings.effective_redis_url], settings=settings)
    try:
        open_store(settings).check()
    except ArtifactStoreUnavailable as exc:  # refused or away: the workers still serve
        warnings.append(str(exc))
    client = probe_redis(settings.effective_redis_url, 5.0, settings=settings)
    host = socket.gethostname()
    while True:
        live = live_workers(client, Keys(settings.key_prefix))
        names = [str(entry.get("hostname", "")) for entry in live]
        if hostname is not None:
            mine = [name for name in names if name == hostname]
            wanted = f"worker {hostname}"
        else:
            mine = [name for name in names if name.rpartition("@")[2] in (host, "localhost")]
            wanted = f"a worker on {host}"
        if mine or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    view = sentinel_view_of(settings)
    if as_json:
        found = {"alive": bool(mine), "workers": mine, "redis_warnings": warnings}
        emit_json({**found, **({"sentinel": view} if view else {})})
    else:
        if view:
            out.print(describe_sentinels(view), highlight=False)
        for warning in warnings:
            err.print(f"warning: {warning}", highlight=False)
        if mine:
            out.print(f"alive: {', '.join(mine)}", highlight=False)
        else:
            seen = f" (live: {', '.join(names)})" if names else " (no live worker at all)"
            err.print(f"{wanted} has no live heartbeat in Redis{seen}", highlight=False)
    if not mine:
        raise typer.Exit(1)

"""``skillq skills`` and ``skillq agents``: what this deployment serves."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from ..core.settings import Settings
from ..store.keys import Keys
from .app import cli
from .support import JsonFlag, emit_json, err, make_client, out


@cli.command()
def skills(as_json: JsonFlag = False) -> None:
    """List the skills running workers serve."""
    with make_client() as client:
        found = client.skills()
    if as_json:
        emit_json([item.model_dump(mode="json") for item in found])
        return
    if not found:
        err.print(
            "no worker has registered any skill yet: start one with `skillq worker` "
            "(SKILLQ_SKILLS names the modules it serves)",
            highlight=False,
        )
        return
    from ..client.display import skills_table

    out.print(skills_table(found))


agents_cli = typer.Typer(help="Agents: list them, register or remove remote A2A agents.")


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
        found = client.agents(tag=tag, skill=skill, capability=capability)
    if as_json:
        emit_json([dataclasses.asdict(item) for item in found])
        return
    from ..client.display import agents_table

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
        added = client.add_remote_agent(url, name=name)
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
def workers(as_json: JsonFlag = False) -> None:
    """List the live workers: name, agent, pool, concurrency, running jobs, skills,
    and when each last renewed its heartbeat."""
    import time

    from ..store.connections import probe_redis
    from ..store.registry import live_workers

    settings = Settings()
    client = probe_redis(settings.effective_redis_url, 5.0, settings=settings)
    found = live_workers(client, Keys(settings.key_prefix))
    if as_json:
        emit_json(found)
        return
    if not found:
        err.print("no live worker: start one with `skillq worker`", highlight=False)
        return
    from rich.table import Table

    table = Table("worker", "agent", "pool", "concurrency", "running", "skills", "heartbeat")
    now = time.time()
    for entry in found:
        beat = entry.get("beat_at")
        table.add_row(
            str(entry.get("hostname", "?")),
            str((entry.get("agent") or {}).get("name", "")),
            str(entry.get("pool") or "?"),
            str(entry.get("concurrency") or "?"),
            str(entry.get("running", 0)),
            ", ".join(item.get("name", "?") for item in entry.get("skills", [])),
            "?" if beat is None else f"{max(0.0, now - float(beat)):.1f} s ago",
        )
    out.print(table)

"""``skillq jobs``: list jobs, newest first, a page at a time."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated

import typer

from .cli_support import JsonFlag, emit_json, err, fail, make_client, out

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
        try:
            page = client.jobs(skill=skill, state=state, since=after, limit=limit, cursor=cursor)
        except Exception as exc:
            fail(exc)
    if as_json:
        emit_json(page.model_dump(mode="json"))
        return
    for job in page.jobs:
        created = datetime.fromtimestamp(job.created_at or 0).isoformat(timespec="seconds")
        out.print(f"{job.id}\t{job.state}\t{job.skill}\t{created}", highlight=False)
    if page.cursor:
        err.print(f"more: --cursor {page.cursor}", highlight=False)

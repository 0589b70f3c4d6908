"""Rich renderings for the CLI: tables and the live event view."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..interface.capabilities import AgentInfo
from ..store.job_status import JobStatus
from ..wire.skill_info import SkillInfo

STATE_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "retrying": "yellow",
    "input_required": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Text a job wrote, made harmless for a terminal: escape sequences (ESC, OSC,
    CSI), carriage returns and other control characters are shown as ``\\xNN``
    instead of moving the cursor, retitling the window or hiding what came before.
    Newlines and tabs stay."""
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(timespec="milliseconds")


def status_table(status: JobStatus) -> Table:
    table = Table(show_header=False, box=None)
    style = STATE_STYLE.get(status.state, "")
    rows: list[tuple[str, str]] = [
        ("job", status.id),
        ("skill", status.skill or "-"),
        ("state", f"[{style}]{status.state}[/{style}]" if style else status.state),
        ("created", when(status.created_at)),
        ("started", when(status.started_at)),
        ("finished", when(status.finished_at)),
        ("worker", status.worker or "-"),
        ("attempts", str(status.attempts)),
        ("progress", status.progress or "-"),
        ("artifacts", ", ".join(a.name for a in status.artifacts) or "-"),
    ]
    if status.priority:
        rows.append(("priority", str(status.priority)))
    if status.eta is not None and status.state == "queued":
        rows.append(("eta", when(status.eta)))
    if status.next_run_at is not None and status.state == "retrying":
        rows.append(("next run", when(status.next_run_at)))
    if status.parent:
        rows.append(("parent", status.parent))
    if status.children:
        rows.append(("children", ", ".join(status.children)))
    if status.retry_of:
        rows.append(("retry of", status.retry_of))
    if status.retried_by:
        rows.append(("retried by", ", ".join(status.retried_by)))
    if status.notice:
        rows.append(("notice", escape(status.notice)))
    if status.question is not None:
        rows.append(("question", escape(status.question.question)))
        if status.question.schema_:
            rows.append(("answer schema", escape(json.dumps(status.question.schema_))))
        if status.question.expires_at is not None:
            rows.append(("answer by", escape(when(status.question.expires_at))))
    if status.error is not None:
        error = status.error
        rows.append(("error", escape(f"{error.type}: {error.message} ({error.code})")))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", value)
    if status.error is not None and status.error.traceback:
        table.add_row("[bold]traceback[/bold]", Text(status.error.traceback.rstrip()))
    return table


def agents_table(agents: list[AgentInfo]) -> Table:
    table = Table("agent", "skills", "tags", "capabilities", "workers", "description")
    for item in agents:
        table.add_row(
            item.name,
            ", ".join(item.skills),
            ", ".join(item.tags),
            ", ".join(item.capabilities),
            str(len(item.metadata.get("workers", []))),
            escape(str(item.metadata.get("description", ""))),
        )
    return table


def skills_table(skills: list[SkillInfo]) -> Table:
    table = Table("skill", "queue", "scopes", "tags", "workers", "description")
    for item in skills:
        table.add_row(
            item.name,
            item.queue,
            ", ".join(item.scopes),
            ", ".join(item.tags),
            str(len(item.workers)) if item.live else "0 (known from the catalog)",
            item.description,
        )
    return table


def watch_events(console: Console, job_id: str, events: Iterable[dict[str, Any]]) -> None:
    """Print streamed text as it arrives, with a live progress line beneath."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[state]}[/bold]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        line = progress.add_task("waiting for the job…", state="queued", total=None)
        for envelope in events:
            kind = envelope.get("kind")
            payload = envelope.get("payload", {})
            if kind == "text_delta":
                console.out(terminal_safe(str(payload.get("text", ""))), end="", highlight=False)
            elif kind == "progress":
                message = terminal_safe(str(payload.get("message", "")))
                progress.update(line, description=escape(message))
            elif kind == "status":
                state = str(payload.get("state", ""))
                style = STATE_STYLE.get(state, "")
                progress.update(line, state=f"[{style}]{state}[/{style}]" if style else state)
                if state in ("succeeded", "failed", "cancelled"):
                    console.out("")
                    message = f"[{style}]{job_id} {state}[/{style}]"
                    if "error" in payload:
                        error = payload["error"]
                        said = terminal_safe(f"{error.get('type')}: {error.get('message')}")
                        message += f": {escape(said)}"
                    console.print(message, highlight=False)
            elif kind == "artifact":
                size = payload.get("size_bytes")
                said = terminal_safe(f"{payload.get('name')} ({size} bytes) {payload.get('uri')}")
                console.print(f"\n[blue]artifact[/blue] {escape(said)}", highlight=False)
            elif kind == "error":
                said = terminal_safe(str(payload.get("message")))
                console.print(f"\n[red]error event[/red] {escape(said)}", highlight=False)
            else:
                said = terminal_safe(f"{payload}")
                console.print(f"\n[dim]{escape(str(kind))}[/dim] {escape(said)}", highlight=False)

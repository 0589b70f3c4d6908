"""What every ``skillq`` command shares: output consoles, error exits, JSON options."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..client.sync import SkillClient
from ..core.errors import spec_for
from ..core.settings import Settings

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def report(exc: BaseException) -> int:
    """Print what went wrong on one line; the exit code the error table gives it."""
    spec = spec_for(exc)
    prefix = "cannot reach Redis: " if spec.code == "redis_unavailable" else ""
    err.print(f"[red]error:[/red] {prefix}{escape(str(exc))}", markup=True, highlight=False)
    return spec.exit_code


def fail(exc: BaseException) -> NoReturn:
    """:func:`report` inside a command that has more to say first."""
    raise typer.Exit(report(exc))


def parse_json(option: str, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] {option} is not valid JSON: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    if not isinstance(value, dict):
        err.print(f"[red]error:[/red] {option} must be a JSON object", highlight=False)
        raise typer.Exit(2)
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def make_client() -> SkillClient:
    return SkillClient(Settings())

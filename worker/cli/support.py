"""What every ``skillq`` command shares: output consoles, error exits, JSON options."""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..client.sync import SkillClient
from ..core.errors import spec_for
from ..core.settings import Settings

# soft_wrap: a long line stays one line in a pipe or a log (tables still fit the width).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def report(exc: BaseException) -> int:
    """Print what went wrong on one line; the exit code the error table gives it."""
    spec = spec_for(exc)
    prefix = unreachable() if spec.code == "redis_unavailable" else ""
    err.print(f"[red]error:[/red] {prefix}{escape(str(exc))}", markup=True, highlight=False)
    return spec.exit_code


def unreachable() -> str:
    """Which Redis could not be reached, and the setting that names it."""
    try:
        settings = Settings()
    except Exception:  # the settings themselves are wrong: the error says so
        return "cannot reach Redis: "
    setting = "SKILLQ_REDIS_URL" if settings.redis_url else "SKILLQ_BROKER_URL"
    return f"cannot reach Redis at {shown_url(settings.effective_redis_url)} ({setting}): "


def shown_url(url: str) -> str:
    """A Redis URL without its password."""
    return re.sub(r"(//[^:@/]*:)[^@/]*@", r"\1***@", url)


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
    except RecursionError as exc:  # the decoder recurses: far past SKILLQ_MAX_ARGS_DEPTH
        err.print(f"[red]error:[/red] {option} is nested too deeply", highlight=False)
        raise typer.Exit(2) from exc
    if not isinstance(value, dict):
        err.print(f"[red]error:[/red] {option} must be a JSON object", highlight=False)
        raise typer.Exit(2)
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def make_client() -> SkillClient:
    """A client for one command: a person waits for it, so a Redis that is away is
    reported after a couple of retries, not after a worker's patience."""
    settings = Settings()
    return SkillClient(
        settings.model_copy(update={"redis_retries": min(settings.redis_retries, 2)})
    )

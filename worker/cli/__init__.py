"""The ``skillq`` command line.

Commands live in the modules beside this one (``jobs``, ``registry``,
``operate``, ``server``, ``workspace``) and register on :data:`cli`. Errors
are reported in one place, :func:`main`, through the one error table
(:data:`worker.core.errors.ERROR_TABLE`), so exit codes are the same
wherever an error comes from: 0 succeeded, 1 job failed, 2 invalid input,
3 cancelled, 4 not found, 5 timed out, 6 Redis or storage unreachable.
"""

from __future__ import annotations

from . import jobs, operate, registry  # noqa: F401 (each registers its commands)
from .app import cli
from .quotas import quota_cli
from .registry import agents_cli
from .schedules import schedule_cli
from .server import serve, token_cli
from .support import report
from .workspace import workspace_cli

cli.add_typer(workspace_cli, name="workspace")
cli.add_typer(token_cli, name="token")
cli.add_typer(agents_cli, name="agents")
cli.add_typer(schedule_cli, name="schedule")
cli.add_typer(quota_cli, name="quota")
cli.command("serve")(serve)


def main() -> None:
    """``skillq``: run the command; any error it raises becomes one line and an exit code."""
    try:
        cli()
    except Exception as exc:
        raise SystemExit(report(exc)) from None


__all__ = ["cli", "main"]

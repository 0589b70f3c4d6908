"""The ``skillq`` Typer app the command modules register on."""

from __future__ import annotations

import typer

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # Errors are reported once, by main(), from the error table: no tracebacks.
    pretty_exceptions_enable=False,
    help="Run agent skills on Celery workers: submit, watch, cancel, fetch artifacts.",
)

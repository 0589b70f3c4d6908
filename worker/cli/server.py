"""``skillq serve`` and ``skillq token``: the HTTP server and its callers' tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .support import err, out

token_cli = typer.Typer(no_args_is_help=True, help="Bearer tokens for the HTTP server.")


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Serve beyond loopback with no authentication."),
    ] = False,
) -> None:
    """Serve the job API (/v1), the A2A endpoints and the live page (/) over HTTP."""
    try:
        from ..server.app import serve as run
    except ImportError as exc:
        err.print(f"error: the server needs skillq[http] ({exc})", highlight=False)
        raise typer.Exit(2) from exc
    run(host, port, insecure=insecure)


@token_cli.command("new")
def new(
    subject: str,
    scope: Annotated[list[str] | None, typer.Option("--scope", "-s")] = None,
    add_to: Annotated[
        Path | None,
        typer.Option(
            "--add-to",
            help="Append the entry to this SKILLQ_SERVER_TOKENS_FILE (made if missing, mode 0600).",
        ),
    ] = None,
) -> None:
    """Make a token for SUBJECT: prints the token (give it to the caller) and the
    entry to add to SKILLQ_SERVER_TOKENS(_FILE), which holds only its hash."""
    from ..server.principals import new_token, token_hash

    token = new_token()
    entry: dict[str, object] = {
        "sha256": token_hash(token),
        "subject": subject,
        "scopes": list(scope or []),
    }
    if add_to is not None:
        add_entry(add_to, entry)
    out.print(token, highlight=False)
    err.print(json.dumps(entry), highlight=False, soft_wrap=True)


def add_entry(path: Path, entry: dict[str, object]) -> None:
    """Append to a tokens file, refusing one that is not a JSON list rather than
    overwriting what the server trusts today."""
    entries: list[object] = []
    if path.exists():
        try:
            loaded = json.loads(path.read_text() or "[]")
        except (ValueError, UnicodeDecodeError) as exc:
            err.print(f"error: {path} is not a JSON list of token entries ({exc})", highlight=False)
            raise typer.Exit(2) from exc
        if not isinstance(loaded, list):
            err.print(f"error: {path} is not a JSON list of token entries", highlight=False)
            raise typer.Exit(2)
        entries = loaded
    entries.append(entry)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(entries, handle, indent=1)
    os.replace(temporary, path)

"""``skillq workspace``: mint, inspect and revoke workspace grants, and move files.

Minting needs the grant key (``SKILLQ_GRANT_KEY`` or
``SKILLQ_GRANT_PRIVATE_KEY``); revoking needs only Redis, so an operator
without the key can still stop a leaked grant.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ..core.settings import Settings
from ..workspace.grants import Grant, GrantSigner
from .support import JsonFlag, emit_json, make_client, out

workspace_cli = typer.Typer(
    no_args_is_help=True, help="Workspace grants: mint, inspect, revoke; read and write files."
)

ScopeOption = Annotated[
    list[str],
    typer.Option(
        "--scope",
        "-s",
        help="read:<prefix> or write:<prefix> (repeatable; an empty prefix is everything).",
    ),
]


def describe(grant: Grant) -> dict[str, object]:
    return {
        "id": grant.id,
        "workspace": grant.workspace,
        "scopes": [str(scope) for scope in grant.scopes],
        "issued_at": grant.issued_at,
        "expires_at": grant.expires_at,
        "delegated_from": list(grant.chain),
    }


@workspace_cli.command()
def grant(
    workspace: str,
    scope: ScopeOption,
    ttl: Annotated[float, typer.Option("--ttl", help="Seconds until it expires.")] = 3600.0,
    as_json: JsonFlag = False,
) -> None:
    """Mint a grant for WORKSPACE and print the token (pass it with `submit --grant`)."""
    signer = GrantSigner.required(Settings())
    token = signer.mint(workspace, scope, ttl=ttl)
    minted = signer.verify(token)
    if as_json:
        emit_json({"token": token, **describe(minted)})
        return
    out.print(token, highlight=False, soft_wrap=True)


@workspace_cli.command()
def inspect(token: str, as_json: JsonFlag = False) -> None:
    """Verify a grant token and show what it allows (exit 2 if it is not valid:
    forged, expired or revoked)."""
    with make_client() as client:
        verified = client.workspace(token).grant
    if as_json:
        emit_json(describe(verified))
        return
    ends = datetime.fromtimestamp(verified.expires_at, UTC).isoformat(timespec="seconds")
    out.print(f"grant {verified.id} for workspace {verified.workspace!r}", highlight=False)
    out.print(f"scopes: {verified.shown_scopes()}", highlight=False)
    out.print(f"expires: {ends}", highlight=False)
    if verified.chain:
        out.print(f"delegated from: {', '.join(verified.chain)}", highlight=False)


@workspace_cli.command()
def revoke(grant_id: str, as_json: JsonFlag = False) -> None:
    """Refuse a grant (by id or token), and every grant delegated from it, from now on."""
    with make_client() as client:
        revoked = client.revoke_grant(grant_id)
    if as_json:
        emit_json({"revoked": revoked})
    else:
        out.print(f"revoked grant {revoked}", highlight=False)


@workspace_cli.command()
def put(
    token: str,
    path: str,
    source: Annotated[Path, typer.Argument(help="Local file to upload ('-': stdin).")],
) -> None:
    """Write a local file to PATH in the grant's workspace (needs write: on PATH)."""
    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    with make_client() as client:
        client.workspace(token).write(path, data)


@workspace_cli.command()
def get(token: str, path: str) -> None:
    """Print the file at PATH of the grant's workspace to stdout (needs read: on PATH)."""
    with make_client() as client:
        data = client.workspace(token).read(path)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@workspace_cli.command("ls")
def list_files(token: str, prefix: str = "", as_json: JsonFlag = False) -> None:
    """List the files the grant can read under PREFIX."""
    with make_client() as client:
        names = client.workspace(token).list(prefix)
    if as_json:
        emit_json(names)
    else:
        for name in names:
            out.print(name, highlight=False)

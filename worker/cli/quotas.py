"""``skillq quota``: cap what one owner's jobs may spend per period."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from .support import JsonFlag, emit_json, err, make_client, out

quota_cli = typer.Typer(
    no_args_is_help=True, help="Quotas: what one owner's jobs may spend per period."
)


def shown(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@quota_cli.command("set")
def set_quota(owner: str, quota: str, as_json: JsonFlag = False) -> None:
    """Set OWNER's quota, e.g. `skillq quota set alice "usd=20/day, tokens=5e5/6h"`."""
    with make_client() as client:
        parsed = client.set_quota(owner, quota)
    if as_json:
        emit_json({unit: q.as_json() for unit, q in parsed.items()})
        return
    for unit, q in parsed.items():
        out.print(f"{owner}: {q.limit:g} {unit} per {q.period:g} s", highlight=False)


@quota_cli.command("ls")
def listed(as_json: JsonFlag = False) -> None:
    """Every owner's own quota."""
    with make_client() as client:
        found = client.quotas()
    if as_json:
        emit_json({o: {u: q.as_json() for u, q in qs.items()} for o, qs in found.items()})
        return
    for owner, quotas in found.items():
        for unit, q in quotas.items():
            out.print(f"{owner}\t{unit}\t{q.limit:g} per {q.period:g} s", highlight=False)


@quota_cli.command("show")
def show(owner: str, as_json: JsonFlag = False) -> None:
    """What OWNER's jobs spent this period, against which limit, until when."""
    with make_client() as client:
        used = client.quota_usage(owner)
    if as_json:
        emit_json(used)
        return
    if not used:
        out.print(f"{owner}: no quota", highlight=False)
    for unit, row in used.items():
        out.print(
            f"{owner}\t{unit}\t{row['spent']:g} of {row['limit']:g}\t"
            f"renews {shown(row['renews_at'])}",
            highlight=False,
        )


@quota_cli.command("rm")
def remove(owner: str) -> None:
    """Forget OWNER's own quota (the default, SKILLQ_DEFAULT_QUOTA, applies again)."""
    with make_client() as client:
        if not client.remove_quota(owner):
            err.print(f"{owner!r} has no quota of its own", highlight=False)
            raise typer.Exit(4)
    out.print(f"{owner}: quota removed", highlight=False)

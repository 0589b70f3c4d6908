"""Skills whose output a browser must treat with care: artifacts that would run
script where they are opened, and spending in units named like the members
every JavaScript object inherits."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

from worker import RunContext, skill

# What the script of a hostile artifact does where it runs: read the token the
# dashboard keeps, keep it and say so where a test can see it.
STEAL = (
    "try { localStorage.setItem('stolen', localStorage.getItem('skillq-token') || 'none'); }"
    " catch (e) {} document.title = 'pwned'; window.__pwned = 1;"
)
EVIL_HTML = f"<!doctype html><html><head><title>evil</title><script>{STEAL}</script></head></html>"
EVIL_SVG = (
    f'<svg xmlns="http://www.w3.org/2000/svg"><title>evil</title><script>{STEAL}</script></svg>'
)


def png() -> bytes:
    """A 1x1 green PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        sealed = kind + data
        return struct.pack(">I", len(data)) + sealed + struct.pack(">I", zlib.crc32(sealed))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00\xff\x00"))
        + chunk(b"IEND", b"")
    )


@skill("writes_pages", queue="browser", description="Writes HTML and SVG that run script.")
async def writes_pages(ctx: RunContext[Any], args: dict[str, Any]) -> list[str]:
    await ctx.write_artifact("evil.html", EVIL_HTML.encode(), "text/html")
    await ctx.write_artifact("evil.svg", EVIL_SVG.encode(), "image/svg+xml")
    await ctx.write_artifact("dot.png", png(), "image/png")
    return ["evil.html", "evil.svg", "dot.png"]


@skill("spends_units", queue="browser", description="Spends [amount, unit] pairs in order.")
async def spends_units(ctx: RunContext[Any], args: dict[str, Any]) -> list[float | None]:
    """What was left after each spend (None: no ceiling)."""
    left = [await ctx.spend(float(amount), str(unit)) for amount, unit in args["spends"]]
    return [None if math.isinf(value) else value for value in left]

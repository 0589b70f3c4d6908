"""A caller whose children run on other workers (``kept_children``), for the
tests that a caller's next run finds the children its last run made. Each
skill appends to the file ``counter`` names, so a test counts what really ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker import RunContext, skill


class ChildFailed(RuntimeError):
    """A child's call came back failed: the caller's retry makes it anew."""


@skill("keeps_children", queue="kept-parent", retries=1, retry_on=(ChildFailed,), backoff=0.1)
async def keeps_children(ctx: RunContext[Any], args: dict[str, Any]) -> list[Any]:
    """Calls ``quick_child`` then ``gated_child``; fails (and retries) on a failed call."""
    outputs = []
    for name in ("quick_child", "gated_child"):
        result = await ctx.call("kids", name, args=args, timeout=120)
        if not result.ok:
            raise ChildFailed(f"{name}: {result.error}")
        outputs.append(result.output)
    with Path(str(args["counter"])).open("a") as handle:
        handle.write("parent\n")
    return outputs

"""Skills for the observability tests: one that logs (its secret included), one
that calls a skill served by another worker, and a tracer provider whose
exporter appends finished spans to the file named by ``SKILLQ_TEST_SPANS``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from worker import RunContext, skill

log = logging.getLogger("observed.chatty")


class Chatter(BaseModel):
    tag: str
    lines: int = 20


@skill("chatty", args=Chatter, queue="observed", secrets=["OPENAI_KEY"])
async def chatty(ctx: RunContext[Any], args: Chatter) -> int:
    secret = ctx.secret("OPENAI_KEY")
    for number in range(args.lines):
        log.info("%s line %d", args.tag, number)
        await asyncio.sleep(0.002)  # lets another job's lines interleave on the loop
    log.warning("%s knows %s", args.tag, secret)
    await asyncio.to_thread(log.info, "%s from a thread", args.tag)
    return args.lines


@skill("relay", queue="observed")
async def relay(ctx: RunContext[Any], args: dict[str, Any]) -> Any:
    await ctx.write_artifact("note.txt", b"relayed", "text/plain")
    result = await ctx.call("skillq", "echo", args={"message": "via relay"}, timeout=60)
    return result.output


def provider() -> Any:
    """A TracerProvider exporting each finished span as one JSON line."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    path = os.environ["SKILLQ_TEST_SPANS"]

    class FileExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(path, "a") as handle:
                for span in spans:
                    context = span.get_span_context()
                    parent = span.parent
                    assert context is not None
                    handle.write(
                        json.dumps(
                            {
                                "name": span.name,
                                "trace_id": format(context.trace_id, "032x"),
                                "span_id": format(context.span_id, "016x"),
                                "parent_id": format(parent.span_id, "016x") if parent else None,
                                "attributes": dict(span.attributes or {}),
                                "pid": os.getpid(),
                            }
                        )
                        + "\n"
                    )
            return SpanExportResult.SUCCESS

    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(FileExporter()))
    return traced

"""The caller's trace, continued: a request carrying W3C trace context
(``traceparent``) makes the jobs it submits (over the job API or A2A) part of
the caller's trace. A plain ASGI middleware, active only with ``SKILLQ_TRACING``."""

from __future__ import annotations

from typing import Any

HEADERS = (b"traceparent", b"tracestate")


class TraceContextMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in HEADERS and len(value) <= 512
        }
        if scope.get("type") != "http" or not carrier:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, propagate

        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)

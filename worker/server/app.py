"""The HTTP server: the job API, the A2A endpoints and the live page, in one
ASGI app. Stateless, so any number of replicas can run behind a load balancer:
jobs, events and artifacts live in Redis and the artifact store."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from ..client.asynchronous import AsyncSkillClient
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from . import artifacts_api, dashboard_api, http_errors, jobs_api, schedules_api, ui
from .a2a_app import RequireBearer, a2a_routes
from .guards import RequestGuard
from .principals import Authenticator
from .streams import StreamLimits
from .trace_context import TraceContextMiddleware

VERSION = "1"


def create_server(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    authenticator = Authenticator(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncSkillClient(settings)
        client.use_fanout(settings.server_stream_buffer)  # every stream on one connection
        app.state.client = client
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="skillq",
        version=VERSION,
        summary="Run agent skills as jobs: submit, stream, cancel, fetch artifacts.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readers = dashboard_api.Readers(settings)
    app.state.authenticator = authenticator
    app.state.streams = StreamLimits(settings.server_max_streams_per_caller)
    http_errors.install(app)
    app.include_router(jobs_api.router)
    app.include_router(artifacts_api.router)
    app.include_router(schedules_api.router)
    app.include_router(dashboard_api.router)
    app.include_router(ui.router)
    app.router.routes.extend(
        a2a_routes(
            settings,
            lambda: app.state.client,
            app.state.streams,
            secured=authenticator.configured,
        )
    )
    app.add_middleware(RequireBearer, authenticator=authenticator)
    if settings.tracing:
        app.add_middleware(TraceContextMiddleware)
    # Outermost: an oversized or unreadable body is refused before anything reads it.
    app.add_middleware(
        RequestGuard,
        max_body=settings.effective_server_max_body,
        max_depth=settings.max_args_depth,
    )

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        """200 while Redis answers (the readiness probe)."""
        client: AsyncSkillClient = request.app.state.client
        await client.redis.ping()
        return {"ok": True}

    return app


def check_exposure(host: str, authenticator: Authenticator, insecure: bool) -> None:
    """Refuse to serve anonymous callers beyond this machine unless told to."""
    if authenticator.configured or insecure or is_loopback(host):
        return
    raise ConfigurationError(
        f"refusing to serve on {host} without authentication: set SKILLQ_SERVER_TOKENS(_FILE) "
        "or SKILLQ_SERVER_JWT_KEY, listen on 127.0.0.1, or pass --insecure"
    )


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = 8000, *, insecure: bool = False) -> None:
    import uvicorn

    settings = Settings()
    check_exposure(host, Authenticator(settings), insecure)
    uvicorn.run(create_server(settings), host=host, port=port, log_level="info")

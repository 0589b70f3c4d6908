"""The A2A side of the server: the agent card and the JSON-RPC endpoint.

The card is built per request from the registry (this deployment's live
skills and those served within ``SKILLQ_SKILL_GRACE``): name, description,
tags, and each skill's input schema in the ``skill-schemas`` extension (A2A
1.0 skills have no schema field). Requests to ``/a2a`` must carry a bearer
token like the job API's; the middleware answers 401 itself, so the SDK's
routes only ever see authenticated callers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.errors import SkillqError
from ..core.settings import Settings
from .a2a_convert import struct
from .a2a_handler import SkillqRequestHandler
from .a2a_params import checked_params
from .http_errors import error_response
from .principals import Authenticator, Principal
from .streams import StreamLimits

RPC_PATH = "/a2a/jsonrpc"
SCHEMAS_EXTENSION = "https://github.com/skillq/skillq/a2a/skill-schemas/v1"


class PrincipalContextBuilder(DefaultServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["principal"] = request.scope.get("skillq.principal")
        return context


class RequireBearer:
    """ASGI middleware: ``/a2a`` requests need a valid bearer token (401 otherwise)."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/a2a"):
            # latin-1, as Starlette reads headers: any byte is some character, so a
            # hostile header is a wrong token (401), never an exception (500).
            headers = {
                bytes(key).decode("latin-1").lower(): bytes(value).decode("latin-1")
                for key, value in scope.get("headers", [])
            }
            try:
                principal: Principal = self.authenticator.principal(headers.get("authorization"))
            except SkillqError as exc:
                await error_response(exc)(scope, receive, send)
                return
            scope["skillq.principal"] = principal
        await self.app(scope, receive, send)


def card_base(settings: Settings, *, secured: bool = True) -> AgentCard:
    """The card's fixed part. ``secured``: the server checks bearer tokens, so the
    card says so; a server that checks none (no tokens or JWT key: loopback or
    ``--insecure``) claims no scheme it does not enforce."""
    card = AgentCard(
        name=settings.agent,
        description=settings.agent_description or "Skills served by skillq workers.",
        version="1",
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
    )
    if secured:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer"))
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card


def public_base(settings: Settings, request: Request) -> str:
    """The URL this server is reached at: ``SKILLQ_SERVER_PUBLIC_URL``, else the one
    the request being answered was sent to, and nothing any other request said."""
    return (settings.server_public_url or str(request.base_url)).rstrip("/")


def a2a_routes(
    settings: Settings,
    client_of: Callable[[], Any],
    streams: StreamLimits,
    *,
    secured: bool = True,
) -> list[BaseRoute]:
    handler = SkillqRequestHandler(client_of, settings, streams)
    base_card = card_base(settings, secured=secured)

    async def fresh_card(base: str) -> AgentCard:
        skills = await client_of().skills()
        current = AgentCard()
        current.CopyFrom(base_card)
        del current.supported_interfaces[:]
        # One endpoint, two protocol versions: 1.0 first (the version a client
        # sends as A2A-Version), then 0.3 (no header), which a 0.3 client finds
        # as the card's top-level url.
        current.supported_interfaces.extend(
            AgentInterface(url=base + RPC_PATH, protocol_binding="JSONRPC", protocol_version=v)
            for v in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        )
        del current.skills[:]
        schemas: dict[str, Any] = {}
        for info in skills:
            current.skills.append(
                AgentSkill(
                    id=info.name,
                    name=info.name,
                    description=info.description or info.name,
                    tags=info.tags or ["skillq"],
                    input_modes=["application/json"],
                    output_modes=["application/json"],
                )
            )
            schemas[info.name] = json.loads(json.dumps(info.args_schema))
        current.capabilities.extensions.append(
            AgentExtension(
                uri=SCHEMAS_EXTENSION,
                description="Each skill's args as JSON Schema: send them as the data part.",
                params=struct({"skills": schemas}),
            )
        )
        return current

    async def agent_card(request: Request) -> Response:
        """The card, built for this request alone (the SDK's card route cannot see
        the request, so a base URL would have to be shared between requests)."""
        card = agent_card_to_dict(await fresh_card(public_base(settings, request)))
        body = json.dumps(card, sort_keys=True, separators=(",", ":"))
        etag = f'W/"{hashlib.sha256(body.encode()).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Host"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    rpc = create_jsonrpc_routes(
        handler,
        RPC_PATH,
        context_builder=PrincipalContextBuilder(),
        enable_v0_3_compat=True,  # 0.3's methods (message/send, ...) on the same URL
    )
    return [
        Route(AGENT_CARD_WELL_KNOWN_PATH, agent_card, methods=["GET"]),
        *(Route(route.path, checked_params(route.endpoint), methods=["POST"]) for route in rpc),
    ]

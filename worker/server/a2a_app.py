"""The A2A side of the server: the agent card and the JSON-RPC endpoint.

The card is built per request from the registry (this deployment's live
skills and those served within ``SKILLQ_SKILL_GRACE``): name, description,
tags, and each skill's input schema in the ``skill-schemas`` extension (A2A
1.0 skills have no schema field). Requests to ``/a2a`` must carry a bearer
token like the job API's; the middleware answers 401 itself, so the SDK's
routes only ever see authenticated callers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.routes import (
    DefaultServerCallContextBuilder,
    create_agent_card_routes,
    create_jsonrpc_routes,
)
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
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.errors import SkillqError
from ..core.settings import Settings
from .a2a_convert import struct
from .a2a_handler import SkillqRequestHandler
from .http_errors import error_response
from .principals import Authenticator, Principal

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
            headers = {key.decode(): value.decode() for key, value in scope.get("headers", [])}
            try:
                principal: Principal = self.authenticator.principal(headers.get("authorization"))
            except SkillqError as exc:
                await error_response(exc)(scope, receive, send)
                return
            scope["skillq.principal"] = principal
        await self.app(scope, receive, send)


def card_base(settings: Settings) -> AgentCard:
    return AgentCard(
        name=settings.agent,
        description=settings.agent_description or "Skills served by skillq workers.",
        version="1",
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        security_schemes={
            "bearer": SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer")
            )
        },
        security_requirements=[SecurityRequirement(schemes={"bearer": StringList()})],
    )


def a2a_routes(
    settings: Settings, client_of: Callable[[], Any], public_url: Callable[[], str]
) -> list[BaseRoute]:
    handler = SkillqRequestHandler(client_of, settings)

    async def fresh_card(card: AgentCard) -> AgentCard:
        skills = await client_of().skills()
        current = AgentCard()
        current.CopyFrom(card)
        base = settings.server_public_url or public_url()
        del current.supported_interfaces[:]
        current.supported_interfaces.append(
            AgentInterface(
                url=base.rstrip("/") + RPC_PATH,
                protocol_binding="JSONRPC",
                protocol_version=PROTOCOL_VERSION_CURRENT,
            )
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

    return [
        *create_agent_card_routes(card_base(settings), card_modifier=fresh_card),
        *create_jsonrpc_routes(handler, RPC_PATH, context_builder=PrincipalContextBuilder()),
    ]

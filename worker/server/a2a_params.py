"""Params the SDK's JSON-RPC dispatcher would misread, refused before it as
Invalid params (-32602).

A 1.0 ``ListTasks`` status filter that names no task state: the dispatcher
parses params ignoring unknown fields, and protobuf then reads an unknown enum
value as unspecified, so ``"status": "DONE"`` would list every task instead of
none. A 0.3 request (``message/send``, ...) whose params do not fit 0.3's
schema: the SDK's 0.3 adapter validates the whole request at once and answers
any mistake as Invalid request (-32600), where JSON-RPC and A2A 0.3 say a
request that is well formed but for its params is Invalid params.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from a2a.compat.v0_3 import types as v03
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.types.a2a_pb2 import TaskState
from a2a.utils.errors import InvalidParamsError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]
# 0.3's methods and their params, as a2a-sdk's 0.3 types define them.
V03_PARAMS: dict[str, TypeAdapter[Any]] = {
    "message/send": TypeAdapter(v03.MessageSendParams),
    "message/stream": TypeAdapter(v03.MessageSendParams),
    "tasks/get": TypeAdapter(v03.TaskQueryParams),
    "tasks/cancel": TypeAdapter(v03.TaskIdParams),
    "tasks/resubscribe": TypeAdapter(v03.TaskIdParams),
    "tasks/pushNotificationConfig/set": TypeAdapter(v03.TaskPushNotificationConfig),
    "tasks/pushNotificationConfig/get": TypeAdapter(
        v03.TaskIdParams | v03.GetTaskPushNotificationConfigParams
    ),
    "tasks/pushNotificationConfig/list": TypeAdapter(v03.ListTaskPushNotificationConfigParams),
    "tasks/pushNotificationConfig/delete": TypeAdapter(v03.DeleteTaskPushNotificationConfigParams),
}


def known_state(status: object) -> bool:
    """A status filter as ProtoJSON writes a TaskState: its name or its number."""
    if isinstance(status, str):
        return status in set(TaskState.keys())
    return isinstance(status, int) and not isinstance(status, bool) and status in TaskState.values()


def refusal(body: dict[str, Any]) -> str | None:
    """Why the params of this (well-formed) request cannot be read, if they cannot."""
    method, params = body.get("method"), body.get("params")
    if method == "ListTasks" and isinstance(params, dict):
        status = params.get("status")
        if status is not None and not known_state(status):
            return f"status {status!r} is not a task state"
    adapter = V03_PARAMS.get(method) if isinstance(method, str) else None
    if adapter is not None:
        try:
            adapter.validate_python(params)
        except ValidationError as exc:
            return f"the params do not fit {method}: {exc.errors(include_url=False)}"
    return None


def checked_params(endpoint: Endpoint) -> Endpoint:
    """The JSON-RPC endpoint, with params it would misread refused first."""

    async def checked(request: Request) -> Response:
        try:
            body = await request.json()  # kept on the request: the dispatcher reads it again
        except ValueError:
            body = None  # the dispatcher answers a parse error
        ident = body.get("id") if isinstance(body, dict) else None
        # No id (a notification) is answered as the 1.0 dispatcher answers one.
        well_formed = (
            isinstance(body, dict)
            and body.get("jsonrpc") == "2.0"
            and (ident is None or isinstance(ident, str | int))
            and not isinstance(ident, bool)
        )
        why = refusal(body) if well_formed and isinstance(body, dict) else None
        if why is not None:
            return JSONResponse(build_error_response(ident, InvalidParamsError(message=why)))
        return await endpoint(request)

    return checked

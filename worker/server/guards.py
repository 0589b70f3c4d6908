"""What the server checks before any route sees a request.

A body is read here, up to ``SKILLQ_SERVER_MAX_BODY`` bytes and no further,
so a 50 MB upload costs the server nothing but the refusal (413). A JSON
body is checked once for what the parsers behind us would turn into a 500
or a Redis error: bytes that are not UTF-8, nesting deeper than the
decoder's recursion limit, a number of thousands of digits, ``NaN`` or
``Infinity`` (not JSON), a lone surrogate (``"\\ud800"``: no UTF-8 encoding
exists for it). Those are the caller's mistakes, so they are answered as such:
400 with the error body of the job API, or the JSON-RPC error on ``/a2a``.
Malformed JSON of the ordinary kind is left to the routes, which already
say where it is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from a2a.server.jsonrpc_models import InvalidRequestError, JSONParseError
from a2a.server.request_handlers.response_helpers import build_error_response
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import InvalidRequest, RequestTooLarge, SkillqError
from .http_errors import error_response

SURROGATE = re.compile("[\ud800-\udfff]")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEPTH_ALLOWANCE = 8  # the request's own levels around the args (A2A: params.message.parts…)


class Refused(Exception):
    """``error`` for the job API; on ``/a2a`` a JSON-RPC parse error (``parse``) or
    invalid request with the same message."""

    def __init__(self, error: SkillqError, *, parse: bool = False) -> None:
        self.error = error
        self.parse = parse


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json(body: bytes, max_depth: int) -> None:
    """Raise :class:`Refused` for a body no route can handle safely; return quietly
    for valid JSON and for ordinary syntax errors (the routes report those)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the body is not UTF-8: byte {exc.start} is invalid"
        raise Refused(InvalidRequest(message), parse=True) from None
    try:
        value = json.loads(text, parse_constant=_not_json_constant)
    except json.JSONDecodeError:
        return
    except RecursionError:
        _too_deep(max_depth)
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise Refused(InvalidRequest(f"the body is not valid JSON: {exc}"), parse=True) from None
    _walk(value, max_depth)


def _too_deep(max_depth: int) -> NoReturn:
    message = f"the body nests deeper than {max_depth} levels"
    raise Refused(InvalidRequest(message))


def _walk(value: Any, max_depth: int) -> None:
    """Depth and lone surrogates, without recursion (the body may be deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                _too_deep(max_depth)
            for key, inner in item.items():
                _check_text(key)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                _too_deep(max_depth)
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    found = SURROGATE.search(text)
    if found is not None:
        message = (
            f"the body holds a lone surrogate (\\u{ord(found.group()):04x}), which is not "
            "Unicode text and has no UTF-8 encoding"
        )
        raise Refused(InvalidRequest(message))


class RequestGuard:
    """ASGI middleware: bounded bodies, checked JSON, readable headers."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_depth: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth + DEPTH_ALLOWANCE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rpc = str(scope.get("path", "")).startswith("/a2a")
        try:
            body = await self._body(scope, receive)
            if body and _is_json(scope, rpc):
                check_json(body, self.max_depth)
        except Refused as refused:
            await _refusal(refused, rpc)(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        if scope.get("method") not in BODY_METHODS:
            return None
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                message = f"Content-Length {declared[:40]!r} is not a byte count"
                raise Refused(InvalidRequest(message))
            if int(declared) > self.max_body:
                raise _too_large(self.max_body)
        chunks: list[bytes] = []
        size = 0
        while True:
            received = await receive()
            if received["type"] != "http.request":
                break  # the client went away
            chunk = received.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _too_large(self.max_body)
            chunks.append(chunk)
            if not received.get("more_body", False):
                break
        return b"".join(chunks)


def _too_large(limit: int) -> Refused:
    return Refused(RequestTooLarge(limit))


def _refusal(refused: Refused, rpc: bool) -> JSONResponse:
    if rpc and not isinstance(refused.error, RequestTooLarge):
        text = str(refused.error)
        error = JSONParseError(message=text) if refused.parse else InvalidRequestError(message=text)
        return JSONResponse(build_error_response(None, error), status_code=200)
    return error_response(refused.error)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _is_json(scope: Scope, rpc: bool) -> bool:
    kind = _header(scope, b"content-type") or ""
    return rpc or "json" in kind.lower()


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed

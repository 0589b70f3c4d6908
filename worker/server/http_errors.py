"""Every error the HTTP server returns, from the one error table.

The body names the problem: ``{"error": {"code", "type", "message"}}`` with
``code`` the job error code of :data:`worker.core.errors.ERROR_TABLE` and the
status its ``http_status``. Anything the table does not know is a 500 whose
message says only that, and is logged with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..core.errors import SkillqError, spec_for

log = logging.getLogger(__name__)


def error_body(code: str, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "type": kind, "message": message, **extra}}


def error_response(exc: BaseException) -> JSONResponse:
    spec = spec_for(exc)
    body = error_body(spec.code, type(exc).__name__, str(exc))
    headers = {"WWW-Authenticate": "Bearer"} if spec.http_status == 401 else None
    return JSONResponse(body, status_code=spec.http_status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(SkillqError)
    async def skillq_error(request: Request, exc: SkillqError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(PermissionError)
    async def permission_error(request: Request, exc: PermissionError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(TimeoutError)
    async def timeout_error(request: Request, exc: TimeoutError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", "")} for item in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details)
        body = error_body("invalid_request", "RequestValidationError", where, details=details)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, "HTTPException", str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        spec = spec_for(exc)
        if spec.code == "redis_unavailable":
            return error_response(exc)
        return JSONResponse(
            error_body("internal", type(exc).__name__, "internal error; see the server log"),
            status_code=500,
        )

"""How one error surfaces on every transport: the row type of the error table in
:mod:`worker.core.errors`, and the JSON-RPC codes its A2A column uses."""

from __future__ import annotations

from dataclasses import dataclass

# JSON-RPC / A2A error codes for the A2A transport.
A2A_INVALID_REQUEST = -32600
A2A_INVALID_PARAMS = -32602
A2A_INTERNAL = -32603
A2A_TASK_NOT_FOUND = -32001
A2A_TASK_NOT_CANCELABLE = -32002
A2A_UNSUPPORTED_OPERATION = -32004


@dataclass(frozen=True)
class ErrorSpec:
    """How one error surfaces: job error code, CLI exit code, HTTP status, A2A error code."""

    code: str
    exit_code: int
    http_status: int
    a2a_code: int = A2A_INTERNAL


DEFAULT_SPEC = ErrorSpec("handler_error", 1, 500)

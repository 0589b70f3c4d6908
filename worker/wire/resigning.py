"""A call put back on the queue by the worker itself, its signature renewed.

A retry's backoff, a limit or a suspension may outlast the signature the
caller made; the worker, which holds the key, renews only a signature that
verifies now, so nothing it did not sign before gets signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidAuth
from .signing import sign, verify
from .submission import signed_options


def resigned(
    kwargs: Mapping[str, Any], *, key: str | None, job_id: str, skill: str, ttl: float
) -> dict[str, Any]:
    """The same call, its signature good for ``ttl`` more seconds: for a job the
    worker itself puts back to wait (a retry's backoff, a limit, a suspension),
    which may outlast the signature the caller made. Only a signature that
    verifies now is renewed; anything else goes back as it came, to be
    refused when it runs."""
    auth = kwargs.get("auth")
    if key is None or not isinstance(auth, dict) or "sig" not in auth:
        return dict(kwargs)
    args, grant = kwargs.get("args") or {}, kwargs.get("grant")
    options = signed_options(kwargs.get("concurrency_key"), kwargs.get("time_limit"))
    try:
        claims = verify(key, job_id, skill, args, auth, grant=grant, options=options).claims
    except InvalidAuth:
        return dict(kwargs)
    fresh = sign(key, job_id, skill, args, claims, ttl, grant=grant, options=options)
    return {**kwargs, "auth": fresh}

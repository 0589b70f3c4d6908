"""``ctx.call`` over HTTP to an agent outside this deployment."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from ..core.a2a import CallResult


class HttpA2AClient:
    """Calls an agent over HTTP: ``POST <target>/skills/<skill>`` with JSON.

    The request body is ``{"args": ..., "grant": ...}`` and the response body
    a :class:`CallResult`. urllib keeps this dependency-free; the blocking
    request runs in a thread so the worker's event loop stays responsive.
    """

    def __init__(self, *, default_timeout: float = 30.0) -> None:
        self._default_timeout = default_timeout

    async def call(
        self,
        target: str,
        skill: str,
        *,
        args: dict[str, Any] | None = None,
        grant: str | None = None,
        timeout: float | None = None,
    ) -> CallResult:
        if not target.startswith(("http://", "https://")):
            return CallResult(ok=False, error=f"target must be an http(s) URL, not {target!r}")
        url = f"{target.rstrip('/')}/skills/{skill}"
        body = json.dumps({"args": args or {}, "grant": grant}).encode()
        limit = timeout if timeout is not None else self._default_timeout
        return await asyncio.to_thread(self._post, url, body, limit)

    @staticmethod
    def _post(url: str, body: bytes, timeout: float) -> CallResult:
        request = urllib.request.Request(  # noqa: S310 (scheme checked in call)
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return CallResult.model_validate_json(response.read())
        except urllib.error.HTTPError as exc:
            return CallResult(ok=False, error=f"HTTP {exc.code} from {url}")
        except (urllib.error.URLError, TimeoutError) as exc:
            return CallResult(ok=False, error=f"cannot reach {url}: {exc}")

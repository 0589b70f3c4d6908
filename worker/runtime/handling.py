"""Running the handler itself: under its time limit, with a grace after a cancel,
turning what would stop the worker into a failure, and checking what it returns."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.errors import (
    ConfigurationError,
    HandlerAborted,
    InvalidGrant,
    InvalidResult,
    JobTimeout,
)
from ..core.secrets import SecretScope
from ..interface.skills import Skill
from ..store.events import dumps
from .call_parsing import Call, describe_validation
from .cancellation import CancelToken
from .celery_context import CeleryRunContext
from .process import ProcessRuntime


async def guarded(handler_call: Any) -> Any:
    """Await the handler, turning what would stop the worker into a failure.

    An asyncio task re-raises ``SystemExit`` and ``KeyboardInterrupt`` out of
    the event loop, into the pool thread running it (ending the worker in the
    solo pool). Caught here, inside the task, they fail the job.
    """
    try:
        return await handler_call
    except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
        raise HandlerAborted(exc, "skills must not exit or interrupt the worker") from exc


def encode_result(skill: Skill, value: Any, scope: SecretScope, max_bytes: int) -> tuple[Any, str]:
    """The result as a JSON value and as text, checked against the skill's model."""
    try:
        plain = skill.result_adapter.dump_python(
            skill.result_adapter.validate_python(value), mode="json"
        )
        text = dumps(plain)
    except (ValidationError, TypeError, ValueError) as exc:
        detail = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidResult(
            f"skill {skill.name!r} returned a result that is not JSON or does not match its "
            f"result model: {detail}"
        ) from exc
    redacted = scope.redact(text)
    if redacted != text:
        text, plain = redacted, json.loads(redacted)
    if len(text.encode()) > max_bytes:
        raise InvalidResult(f"result of skill {skill.name!r} is over the {max_bytes}-byte limit")
    return plain, text


async def run_handler(
    rt: ProcessRuntime,
    skill: Skill,
    ctx: CeleryRunContext[Any],
    args: BaseModel | dict[str, Any],
    token: CancelToken,
    time_limit: float | None,
) -> Any:
    """Run the handler under its time limit; after a cancel, give it a grace period."""
    loop = asyncio.get_running_loop()
    # The handler's task (and what it starts) copies the context, whose job log
    # (set by execute) sends its records to this job alone.
    task: asyncio.Future[Any] = asyncio.ensure_future(guarded(skill.handler(ctx, args)))
    timers: list[asyncio.TimerHandle] = []
    token.on_cancel(lambda: timers.append(loop.call_later(rt.settings.cancel_grace, task.cancel)))
    try:
        if time_limit is None:
            return await task
        try:
            async with asyncio.timeout(time_limit):
                return await task
        except TimeoutError as exc:
            if task.cancelled():
                raise JobTimeout(ctx.task_id, time_limit) from exc
            raise
    finally:
        for timer in timers:
            timer.cancel()


def check_grant_use(rt: ProcessRuntime, skill: Skill, call: Call) -> None:
    """A grant goes only to a skill that declared workspace access, on a worker that
    can verify it; anything else is a mistake the caller must hear about."""
    if call.grant is None:
        return
    if not skill.workspace_access:
        raise InvalidGrant.without_access(skill.name)
    if rt.capabilities.workspace is None:
        raise ConfigurationError(
            "this worker cannot verify workspace grants: set SKILLQ_GRANT_KEY (or "
            "SKILLQ_GRANT_PUBLIC_KEY) on the worker as on the client that minted the grant"
        )

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
    """Run the handler under its time limit; after a cancel, give it a grace period.

    The handler runs in the job's own task (``execute`` always runs as one),
    not in a task of its own: a second task per job cost a task's creation and
    a loop iteration on every job. A cancel stops it by cancelling that task
    once the grace is over, and only while the handler runs: a cancel that
    arrives later must not cut short the writing of the outcome's events.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    grace = _Grace(task)
    token.on_cancel(lambda: grace.start(loop, rt.settings.cancel_grace))
    try:
        if time_limit is None:
            return await guarded(skill.handler(ctx, args))
        limit = asyncio.timeout(time_limit)
        try:
            async with limit:
                return await guarded(skill.handler(ctx, args))
        except TimeoutError as exc:
            if limit.expired():
                raise JobTimeout(ctx.task_id, time_limit) from exc
            raise
    except asyncio.CancelledError:
        grace.settle()
        raise
    finally:
        grace.end()


class _Grace:
    """The timer that cancels a job's task a grace period after its cancel."""

    __slots__ = ("fired", "over", "task", "timer")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.timer: asyncio.TimerHandle | None = None
        self.fired = False
        self.over = False

    def start(self, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        if not self.over and self.timer is None:
            self.timer = loop.call_later(grace, self._fire)

    def _fire(self) -> None:
        if not self.over:
            self.fired = True
            self.task.cancel()

    def settle(self) -> None:
        """The cancel was ours and has arrived: the task goes on to record it."""
        if self.fired:
            self.fired = False
            self.task.uncancel()

    def end(self) -> None:
        self.over = True
        if self.timer is not None:
            self.timer.cancel()


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

"""Durable steps: ``await ctx.step(name, fn, *args, **kwargs)``.

A job that is delivered again (its worker died, a retry, a resume) runs its
handler from the top; a step that finished on an earlier delivery returns
its stored result instead of running again, so the LLM call or the side
effect inside it is paid for once. The rule for handlers: code outside
steps runs again on every delivery.

A step's result is stored as JSON and handed back as JSON reads it (a tuple
comes back a list), the same on the first run as on a replay, so the code
after a step sees one shape. A step that raises is not stored and runs again
next time. Where results are kept is the context's: a worker keeps them in
the job's record (fenced by the delivery, see :mod:`worker.runtime.leases`),
:class:`~worker.interface.context.LocalRunContext` in a dict.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import DuplicateStep, InvalidResult

STEP_EVENT = "step"


@dataclass(frozen=True)
class StepDone:
    """A finished step as stored: its result as JSON text, and when it ran."""

    result: str
    started_at: float
    ended_at: float

    def stored(self) -> str:
        """The record's field value (the result spliced in, not parsed again)."""
        return (
            f'{{"state":"done","started_at":{self.started_at!r},"ended_at":{self.ended_at!r},'
            f'"result":{self.result}}}'
        )

    @classmethod
    def parse(cls, text: str) -> StepDone:
        raw = json.loads(text)
        return cls(json.dumps(raw.get("result")), raw["started_at"], raw["ended_at"])


class StepRunner:
    """One delivery's steps: names seen, and where finished ones are kept."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[StepDone | None]],
        save: Callable[[str, StepDone], Awaitable[None]],
        emit: Callable[[str, dict[str, Any]], Awaitable[None]],
        check: Callable[[str, str], None] | None = None,
    ) -> None:
        self._load, self._save, self._emit, self._check = load, save, emit, check
        self._names: set[str] = set()

    async def run(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError("a step's name is a non-empty string of at most 200 characters")
        if name in self._names:
            raise DuplicateStep(name)
        self._names.add(name)
        done = await self._load(name)
        if done is not None:
            await self._emit(STEP_EVENT, {"name": name, "state": "replayed"})
            return json.loads(done.result)
        await self._emit(STEP_EVENT, {"name": name, "state": "running"})
        started = time.time()
        try:
            if inspect.iscoroutinefunction(fn):
                value = await fn(*args, **kwargs)
            else:
                # A blocking call must not stall the event loop other jobs share.
                value = await asyncio.to_thread(fn, *args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
        except BaseException as exc:
            await self._emit(
                STEP_EVENT, {"name": name, "state": "failed", "error": type(exc).__name__}
            )
            raise
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidResult(f"step {name!r} returned what JSON cannot hold: {exc}") from exc
        if self._check is not None:
            self._check(name, text)
        await self._save(name, StepDone(text, started, time.time()))
        await self._emit(STEP_EVENT, {"name": name, "state": "done"})
        return json.loads(text)

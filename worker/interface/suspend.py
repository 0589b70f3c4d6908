"""Waits that free the worker: ``await ctx.sleep(seconds)`` and
``await ctx.ask(question, schema=Model, timeout=seconds)``.

A durable sleep ends the attempt instead of holding a pool slot: the handler
raises :class:`Suspended` (a ``BaseException``, so ``except Exception`` in a
handler does not swallow it), the worker records the job ``queued`` with the
time it wakes, parks its message in Redis until then
(:mod:`worker.runtime.delays`) and takes other work. The job then runs again
from the top: finished steps return their stored results, and the same
``ctx.sleep`` call, having its wake time in the record, returns at once.
Sleeps are told apart by the order they are called in, so the code before a
sleep must make the same calls each time (put what varies in steps).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from ..core.errors import InputTimeout

MAX_SLEEP = 10 * 366 * 86400.0  # seconds, as long as a delay may be
MAX_QUESTION = 10_000  # characters
ASK_FIELD, ANSWER_FIELD = "ask:", "answer:"


class Suspended(BaseException):
    """The attempt ends here; the job runs again at ``until`` (Unix seconds)."""

    def __init__(self, until: float, state: str = "queued", detail: dict[str, Any] | None = None):
        super().__init__(until, state)
        self.until = until
        self.state = state
        self.detail = detail or {}


class Sleeps:
    """One delivery's ``ctx.sleep`` calls, numbered in the order they are made."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[str | None]],
        save: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._load, self._save = load, save
        self._count = 0

    async def sleep(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise TypeError("ctx.sleep takes a number of seconds")
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP:
            raise ValueError(f"ctx.sleep takes 0 to {MAX_SLEEP:.0f} seconds, not {seconds!r}")
        self._count += 1
        key = str(self._count)
        stored = await self._load(key)
        if stored is None:
            wake = time.time() + float(seconds)
            await self._save(key, repr(wake))
        else:
            wake = float(stored)
        if time.time() >= wake:
            return
        raise Suspended(wake, "queued", {"sleep": self._count})


class Asks:
    """One delivery's ``ctx.ask`` calls, numbered in the order they are made.

    The question (``ask:<n>``) and its answer (``answer:<n>``, stored by
    ``client.respond``) live in the job's record; a job waits
    ``input_required`` with no process or thread held, and runs again from
    the top once answered, when this same call returns the answer.
    """

    def __init__(
        self,
        job_id: str,
        load: Callable[[str], Awaitable[str | None]],
        save: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._job_id, self._load, self._save = job_id, load, save
        self._count = 0

    async def ask(
        self, question: str, schema: type[BaseModel] | None, timeout: float | None
    ) -> Any:
        check_question(question, timeout)
        self._count += 1
        return await self.ask_as(self._count, question, schema, timeout)

    async def ask_as(
        self, count: int, question: str, schema: type[BaseModel] | None, timeout: float | None
    ) -> Any:
        """Ask as question ``count`` (its answer is ``answer:<count>``): for asks
        that do not come in the handler's order, such as a budget's."""
        check_question(question, timeout)
        number = str(count)
        answer = await self._load(ANSWER_FIELD + number)
        if answer is not None:
            return schema.model_validate_json(answer) if schema else json.loads(answer)
        stored = await self._load(ASK_FIELD + number)
        now = time.time()
        asked: dict[str, Any]
        if stored is None:
            asked = {
                "question": question,
                "schema": schema.model_json_schema() if schema else {},
                "asked_at": now,
                "expires_at": None if timeout is None else now + float(timeout),
            }
            await self._save(ASK_FIELD + number, json.dumps(asked))
        else:
            asked = json.loads(stored)
        expires: float | None = asked.get("expires_at")
        if expires is not None and now >= expires:
            raise InputTimeout(self._job_id, question)
        until = float(expires) if expires is not None else now + MAX_SLEEP
        raise Suspended(until, "input_required", {"ask": count, "question": question})


def check_question(question: str, timeout: float | None) -> None:
    if not isinstance(question, str) or not 0 < len(question) <= MAX_QUESTION:
        raise ValueError(f"a question is a string of 1 to {MAX_QUESTION} characters")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_SLEEP
    ):
        raise ValueError(f"an ask's timeout is 0 to {MAX_SLEEP:.0f} seconds, not {timeout!r}")

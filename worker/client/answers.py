"""Answering a job that asks (``ctx.ask``): ``client.respond(job_id, data)``.

The answer obeys the limits args obey (``SKILLQ_MAX_ARGS_BYTES``,
``SKILLQ_MAX_ARGS_DEPTH``, strict JSON: the same check as a submission's) and
is checked against the question's JSON schema here, before anything is
written, so a wrong answer is refused with the reason and the job keeps
waiting; stored in
the job's record; and the job's waiting message is brought forward in the
broker, so the job runs again within a fraction of a second. Mixed into both
clients, as the schedule calls are.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import jsonschema
from redis.asyncio import Redis

from ..core.errors import InvalidArgs, JobNotFound, NotWaitingForInput
from ..core.settings import Settings
from ..store.connections import async_redis
from ..store.job_status import JobStatus
from ..store.jobs import job_argv, job_keys
from ..store.keys import Keys
from ..store.scriptfiles import load
from ..wire.submit_checks import checked_json

RESPOND = load("respond")
WAKE = load("delay_wake")
WAKE_MARKER_TTL = 7 * 86400  # seconds: a job answered before its message was parked
T = TypeVar("T")


def checked_answer(
    job_id: str, status: JobStatus, data: Any, settings: Settings
) -> tuple[int, str]:
    """The question's number and the answer as JSON, or why it cannot be given.
    The limits come before the schema: a validator walks the answer by recursion."""
    question = status.question
    if question is None:
        raise NotWaitingForInput(job_id, status.state)
    text = checked_json(status.skill or "?", data, settings, what="the answer")
    validator = jsonschema.Draft202012Validator(question.schema_)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(part) for part in errors[0].path) or "answer"
        raise InvalidArgs(
            status.skill or "?",
            f"the answer does not fit the question: {where}: {errors[0].message}",
        )
    return question.number, text


class AsyncAnswerMethods:
    """``respond`` on :class:`~worker.client.AsyncSkillClient`."""

    settings: Settings
    keys: Keys

    @property
    def redis(self) -> Redis:  # pragma: no cover - the client provides it
        raise NotImplementedError

    async def status(self, job_id: str) -> JobStatus:  # pragma: no cover - the client's
        raise NotImplementedError

    async def respond(self, job_id: str, data: Any) -> JobStatus:
        """Answer the question a job waits on (``input_required``); it runs again
        and its ``ctx.ask`` returns ``data``. Raises ``InvalidArgs`` when the
        answer is past what args may be, or naming the field when it does not
        fit the question's schema (the job keeps waiting), ``NotWaitingForInput``
        when it asks nothing now."""
        number, text = checked_answer(job_id, await self.status(job_id), data, self.settings)
        keys = job_keys(self.keys, job_id)
        said = await self.redis.register_script(RESPOND)(
            keys=keys, args=[*job_argv(self.settings, job_id), str(number), text]
        )
        said = said.decode() if isinstance(said, bytes) else str(said)
        if said == "missing":
            raise JobNotFound(job_id)
        if said != "ok":
            raise NotWaitingForInput(job_id, said)
        broker = self.__dict__.get("_broker")
        if broker is None:
            broker = self.__dict__["_broker"] = async_redis(self.settings, self.settings.broker_url)
        await broker.register_script(WAKE)(
            keys=[self.keys.delayed, self.keys.wake(job_id)],
            args=[f"wake:{job_id}", str(WAKE_MARKER_TTL), self.keys.due_channel],
        )
        return await self.status(job_id)


class AnswerMethods:
    """The same on :class:`~worker.client.SkillClient`, blocking."""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:  # pragma: no cover - the client's
        raise NotImplementedError

    def _answerer(self) -> AsyncAnswerMethods:  # pragma: no cover - the client's
        raise NotImplementedError

    def respond(self, job_id: str, data: Any) -> JobStatus:
        """See :meth:`AsyncAnswerMethods.respond`."""
        return self._run(self._answerer().respond(job_id, data))

"""A job's log lines as a client reads them: the ``log`` events its handler's
``logging`` records became (see :mod:`worker.runtime.joblogs`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class LogLine(BaseModel):
    """One line a job logged; ``seq`` orders it among the job's events."""

    model_config = ConfigDict(frozen=True)

    seq: int
    ts: float
    level: str
    logger: str
    message: str

    def __str__(self) -> str:
        return f"{self.level:<8} {self.logger}: {self.message}"


def as_line(envelope: Mapping[str, Any]) -> LogLine | None:
    if envelope.get("kind") != "log":
        return None
    payload = envelope.get("payload") or {}
    return LogLine(
        seq=int(envelope.get("seq", 0)),
        ts=float(envelope.get("ts", 0.0)),
        level=str(payload.get("level", "INFO")),
        logger=str(payload.get("logger", "")),
        message=str(payload.get("message", "")),
    )


def log_lines(envelopes: Iterable[Mapping[str, Any]]) -> Iterator[LogLine]:
    for envelope in envelopes:
        line = as_line(envelope)
        if line is not None:
            yield line


async def alog_lines(envelopes: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[LogLine]:
    async for envelope in envelopes:
        line = as_line(envelope)
        if line is not None:
            yield line

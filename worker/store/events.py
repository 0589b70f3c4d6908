"""Writing a job's events: encode, buffer, and flush in batches.

``emit_event`` must not cost a Redis round trip per event, or a handler that
streams tokens is capped by network latency. Events are encoded (and checked)
at once, queued in order and written by one flusher task per job in batches,
each batch one script call. A handler that outruns Redis waits once the
backlog reaches ``HIGH_WATER`` (until the flusher takes the next batch), so
memory stays bounded and the handler's encoding overlaps Redis's work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from json.encoder import encode_basestring as encode_string
from typing import Any

from ..core.errors import InvalidEvent
from .jobs import JobStore

log = logging.getLogger(__name__)

KIND = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
RESERVED_KINDS = frozenset({"status"})
MAX_BATCH = 512
HIGH_WATER = 4096

# (envelope tail, progress): the tail is everything after ``"seq":<n>``, so the
# EMIT script only splices in the seq Redis allocates.
Encoded = tuple[str, str]
TEXT_DELTA_KIND = '"text_delta"'


def dumps(value: Any) -> str:
    """Compact, strict JSON: NaN and non-JSON types are errors, not surprises."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def envelope_tail(ts: str, kind_json: str, payload_json: str) -> str:
    return ',"ts":' + ts + ',"kind":' + kind_json + ',"payload":' + payload_json + "}"


def encode_event(
    kind: str, payload: dict[str, Any], *, max_bytes: int, redact: Callable[[str], str]
) -> Encoded:
    if not isinstance(kind, str) or not KIND.match(kind):
        raise InvalidEvent(f"invalid event kind {kind!r}: use 1-64 of [A-Za-z0-9_.:-]")
    if kind in RESERVED_KINDS:
        raise InvalidEvent(f"event kind {kind!r} is reserved for the runtime")
    if not isinstance(payload, dict):
        raise InvalidEvent(f"event payload must be a dict, not {type(payload).__name__}")
    try:
        body = redact(dumps(payload))
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"event payload of kind {kind!r} is not JSON: {exc}") from exc
    if len(body) > max_bytes // 4 and len(body.encode()) > max_bytes:
        raise InvalidEvent(
            f"event payload of kind {kind!r} is larger than the {max_bytes}-byte limit"
        )
    progress = ""
    if kind == "progress":
        message = payload.get("message")
        progress = redact(str(message)) if message is not None else ""
    return envelope_tail(repr(time.time()), dumps(kind), body), progress


def encode_text_delta(text: str, *, max_bytes: int) -> Encoded:
    """The hot path of streamed text, already redacted by the caller."""
    body = '{"text":' + encode_string(text) + "}"
    if len(body) > max_bytes // 4 and len(body.encode()) > max_bytes:
        raise InvalidEvent(
            f"event payload of kind 'text_delta' is larger than the {max_bytes}-byte limit"
        )
    return envelope_tail(repr(time.time()), TEXT_DELTA_KIND, body), ""


class EventWriter:
    """Ordered, batched event writes for one job."""

    def __init__(self, store: JobStore, job_id: str, delivery: str = "") -> None:
        self._store = store
        self._job_id = job_id
        self._delivery = delivery  # fences a stale run's events
        self._pending: list[Encoded] = []
        self._written = 0  # events of this delivery already sent to Redis
        self._flusher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._room = asyncio.Event()  # set whenever the flusher takes a batch

    async def write(self, event: Encoded) -> None:
        if self._failure is not None:
            raise self._failure
        self._pending.append(event)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        if len(self._pending) >= HIGH_WATER:
            await self._make_room()

    def push(self, event: Encoded) -> None:
        """Queue an event without waiting for room (on the writer's loop): for
        producers that cannot await, such as a logging handler; they bound
        their own volume."""
        if self._failure is not None:
            return
        self._pending.append(event)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    @property
    def written(self) -> int:
        """Events of this delivery already in Redis."""
        return self._written

    async def _make_room(self) -> None:
        """Wait only until the flusher takes the next batch, not until Redis has
        it all: the handler then encodes more while Redis runs that batch."""
        while len(self._pending) >= HIGH_WATER and self._flusher is not None:
            self._room.clear()
            await self._room.wait()
        if self._failure is not None:
            raise self._failure

    async def drain(self) -> None:
        """Wait until every event written so far is in Redis (or raise why not)."""
        flusher = self._flusher
        if flusher is not None:
            await asyncio.shield(flusher)
        if self._failure is not None:
            raise self._failure

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                self._room.set()
                await self._store.emit(self._job_id, self._written + 1, batch, self._delivery)
                self._written += len(batch)
        except Exception as exc:  # surfaced to the handler on its next emit
            log.warning("cannot write events of job %s: %s", self._job_id, exc)
            self._failure = exc
            self._pending.clear()
        finally:
            self._flusher = None
            self._room.set()

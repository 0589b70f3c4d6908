"""A kombu Redis transport that survives hostile queue items.

kombu's Redis transport decodes each item it pops from a queue list inside
its polling loop; one item that is not a well-formed JSON envelope (garbage
bytes, malformed JSON, a wrong-shaped body, another content type such as
pickle) raises there, and the worker's consumer exits. Anyone who can write
to Redis could stop every worker. This transport checks each item first;
anything it cannot hand to Celery safely goes to a dead-letter list
(``skillq:dead``, newest first, bounded) with the reason, is logged, and
consumption goes on. Pickle is refused here before Celery could see it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import RedisError

from .artifacts import JOB_ID
from .skills import TASK_PREFIX

log = logging.getLogger(__name__)

DEAD_LETTER_KEY = "skillq:dead"
DEAD_LETTER_MAX = 10_000
RAW_KEPT_BYTES = 64 * 1024
ACCEPTED_CONTENT_TYPE = "application/json"


def envelope_problem(item: bytes | str) -> tuple[dict[str, Any] | None, str]:
    """The decoded envelope, or None and why it cannot be delivered."""
    try:
        message = json.loads(bytes_to_str(item))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(message, dict):
        return None, f"envelope is a JSON {type(message).__name__}, not an object"
    properties = message.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        return None, "envelope has no properties.delivery_tag"
    if not isinstance(properties.get("delivery_info", {}), dict):
        return None, "properties.delivery_info is not an object"
    if not isinstance(message.get("headers", {}), dict):
        return None, "headers is not an object"
    content_type = message.get("content-type")
    if content_type != ACCEPTED_CONTENT_TYPE:
        return None, f"content type {content_type!r} refused: skillq accepts JSON only"
    body = message.get("body")
    if not isinstance(body, str):
        return None, "body is not a string"
    try:
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True).decode("utf-8")
        json.loads(body)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        return None, f"body is not JSON: {exc}"
    return message, ""


def running_delivery_tags() -> set[str]:
    """Delivery tags of the jobs this worker process has started."""
    from celery.worker import state as worker_state

    tags: set[str] = set()
    for request in list(worker_state.active_requests):
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag is not None:
            tags.add(str(tag))
    return tags


def refused_job(item: bytes) -> tuple[str, str]:
    """The job id and task name a refused item carries, if it is readable at all."""
    try:
        envelope = json.loads(bytes_to_str(item))
        headers = envelope.get("headers") if isinstance(envelope, dict) else None
        if isinstance(headers, dict):
            job_id, task = headers.get("id"), headers.get("task")
            if isinstance(job_id, str) and isinstance(task, str) and JOB_ID.match(job_id):
                return job_id, task
    except (ValueError, UnicodeDecodeError):
        pass
    return "", ""


class QoS(kombu_redis.QoS):
    """Unacknowledged messages when a connection is lost.

    kombu pushes every unacknowledged message back onto its queue when the
    channel closes, including those of jobs still running: after a Redis
    blip the same job would then run twice at once. skillq restores only
    messages whose jobs have not started; a running job acknowledges its
    message when it finishes (through a fresh connection, see
    ``Channel._connparams``), and if its worker dies instead the message
    comes back after the visibility timeout. A restore that cannot reach
    Redis is left to that timeout too, instead of stopping the worker.
    """

    def restore_unacked(self, client: Any = None) -> None:
        delivered: Any = self._delivered
        running = running_delivery_tags()
        try:
            with self.channel.conn_or_acquire(client) as conn:  # type: ignore[attr-defined]
                for tag in list(delivered):
                    if str(tag) not in running:
                        self.restore_by_tag(tag, client=conn)
        except (AttributeError, OSError, RedisError) as exc:
            log.warning(
                "cannot restore %d unacknowledged message(s) now (%s); they stay in "
                "Redis and come back after the visibility timeout",
                len(delivered),
                exc,
            )
        delivered.clear()


class Channel(kombu_redis.Channel):
    QoS = QoS
    _saved_connparams: dict[bool, dict[str, Any]]

    def _connparams(self, asynchronous: bool = False) -> Any:
        """Connection parameters, remembered for after the connection is closed.

        Celery acknowledges a running job's message on the channel it came
        from; after a reconnect that channel's connection is gone and kombu
        would fail with an AttributeError that stops the worker.
        """
        saved = self.__dict__.setdefault("_saved_connparams", {})
        gone = self.connection is None or self.connection.client is None
        if gone and asynchronous in saved:
            return dict(saved[asynchronous])
        params = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        saved[asynchronous] = dict(params)
        return params

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)  # type: ignore[attr-defined]
            message = self._checked(item, dest)
            if message is None:
                raise Empty()
            self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        with self.conn_or_acquire() as client:
            for priority in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, priority))  # type: ignore[attr-defined]
                if item:
                    message = self._checked(item, queue)
                    if message is not None:
                        return message
        raise Empty()

    def _checked(self, item: bytes, queue: str) -> dict[str, Any] | None:
        message, reason = envelope_problem(item)
        if message is not None:
            return message
        raw = item[:RAW_KEPT_BYTES]
        record = json.dumps(
            {
                "queue": queue,
                "reason": reason,
                "at": time.time(),
                "raw_base64": base64.b64encode(raw).decode(),
                "raw_bytes": len(item),
            }
        )
        log.error(
            "dead-lettered an item from queue %r (%d bytes): %s; kept in %s",
            queue,
            len(item),
            reason,
            DEAD_LETTER_KEY,
        )
        try:
            with self.conn_or_acquire() as client, client.pipeline() as pipe:
                pipe.lpush(DEAD_LETTER_KEY, record)
                pipe.ltrim(DEAD_LETTER_KEY, 0, DEAD_LETTER_MAX - 1)
                pipe.execute()
        except self.connection_errors as exc:  # type: ignore[attr-defined]
            log.error("cannot store the dead letter: %s", exc)
        self._fail_job(item, reason)
        return None

    def _fail_job(self, item: bytes, reason: str) -> None:
        """If the item names a skill job, record why it will never run.

        A raw producer that sent, say, pickle then sees a failed job (and
        ``AsyncResult.get()`` raises) instead of waiting forever.
        """
        job_id, task = refused_job(item)
        if not job_id or not task.startswith(TASK_PREFIX):
            return
        from .celery_results import fused, meta_json, meta_key
        from .jobs import JobError, JobRecords
        from .keys import Keys
        from .runtime import sync_redis
        from .settings import Settings

        try:
            records: JobRecords | None = self.__dict__.get("_skillq_records")
            if records is None:
                settings = Settings()
                records = JobRecords(sync_redis(settings), Keys(settings.key_prefix), settings)
                self.__dict__["_skillq_records"] = records
            error = JobError(
                type="MessageRefused", message=f"message refused: {reason}", code="message_refused"
            )
            meta = None
            if fused(records.settings):
                meta = (meta_key(job_id), meta_json(job_id, "failed", error=error))
            records.finish(job_id, "failed", worker="", error=error, celery_meta=meta)
        except Exception as exc:  # the dead letter is already kept
            log.error("cannot record the refusal of job %s: %s", job_id, exc)


class Transport(kombu_redis.Transport):
    Channel = Channel

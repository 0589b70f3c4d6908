"""A kombu Redis transport that survives hostile queue items and mixed deploys.

kombu's Redis transport decodes each item it pops from a queue list inside
its polling loop, and Celery's consumer then unpacks it in the worker's main
process; one item of the wrong shape raises there and the worker exits.
Anyone who can write to Redis could stop every worker. This transport checks
each item first (:mod:`worker.wire.envelope`); anything Celery cannot unpack
safely goes to the dead-letter list ``<prefix>:dead`` (newest first, bounded)
with the reason, is logged, fails the job it names, and consumption goes on.

It also keeps workers of a rolling deploy from failing each other's jobs:
a job for a skill this worker lacks, which the catalog says another worker
served within ``SKILLQ_SKILL_GRACE``, is put back on its queue for a worker
that has it, instead of failing as an unknown skill.

Configuration arrives through ``broker_transport_options["skillq"]`` (see
:func:`transport_options`), never from the environment.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from queue import Empty
from time import monotonic
from typing import Any, TypeVar

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import RedisError

from ..interface.skills import TASK_PREFIX
from ..store.artifacts import JOB_ID
from ..store.outage import outlast
from ..wire.envelope import Inspection, inspect
from . import delays, leases, refusals
from .checked_message import CheckedMessage, remember
from .leased_qos import QoS, TransportConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# sha256 (first 16 hex digits) of the source of each kombu method overridden
# below (and in sentinel_transport.py), as written for kombu 5.7.
# tests/test_units.py fails when a kombu upgrade changes one: re-read it and
# re-run tests/runtime/test_faults.py and tests/runtime/test_hostile.py
# before updating the digest.
OVERRIDDEN_KOMBU_SOURCES = {
    "Channel._brpop_read": "c42518699709f2df",
    "Channel._brpop_start": "06723d707ddf2240",
    "Channel._get": "be26a9f1eb4cf8da",
    "Channel._connparams": "e9a4295085a8fb90",
    "QoS.restore_unacked": "8954efef014d546e",
    "QoS.append": "35c655f6ecc62fe6",
    "QoS.restore_visible": "d4a4a40a3eaf9f23",
    "QoS._remove_from_indices": "980a109d54ad9136",
    "QoS.ack": "1bc15a4ddf541af6",
    "SentinelChannel._sentinel_managed_pool": "bde54a2d6e93ac13",
    "Channel.basic_consume": "34e0da85e689ff98",
    "Channel._create_client": "dae92bc4075dafb9",
}
REQUEUE_PAUSE_FIRST, REQUEUE_PAUSE_MAX = 0.05, 0.5
FOREIGN_STREAK_MAX = 10_000


class Channel(kombu_redis.Channel):
    QoS = QoS
    Message = CheckedMessage
    _saved_connparams: dict[bool, dict[str, Any]]

    @property
    def skillq(self) -> TransportConfig:
        config: TransportConfig | None = self.__dict__.get("_skillq_config")
        if config is None:
            client: Any = self.connection.client
            options = client.transport_options or {}
            config = self.__dict__["_skillq_config"] = TransportConfig.from_options(options)
        return config

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

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu's client for a command, made once per pool instead of per command.

        kombu builds a new redis-py client (cheap to use, costly to make: its
        table of response callbacks) for every command it sends outside the
        polling loop: twice per job, for the unacknowledged entry and the
        acknowledgement, a fifth of a worker's main-process CPU under no-op
        load (py-spy). A client over a connection pool is safe to share.
        """
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        cached: Any = self.__dict__.get("_skillq_broker_client")
        if cached is None or cached.connection_pool is not pool:
            made = super()._create_client()  # type: ignore[misc]
            cached = self.__dict__["_skillq_broker_client"] = made
        return cached

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        """Consuming: this process's lease keeper renews what the channel holds."""
        config = self.skillq
        keeper = leases.keeper_for(
            config.settings, config.keys, self.unacked_key, self.unacked_index_key
        )
        keeper.hold(self.qos)
        delays.promoter_for(config.settings, config.keys)
        return super().basic_consume(*args, **kwargs)

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

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Wait on every queue's lists, the most urgent priority first.

        BRPOP pops from the first non-empty key it is given; kombu lists
        priority 0 first (Redis's reading in Celery's docs), skillq 9 first:
        the order of AMQP, and of ``submit(priority=)``.
        """
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))  # type: ignore[attr-defined]
        if not queues:
            return
        keys: list[Any] = [
            self._q_for_pri(queue, pri)  # type: ignore[attr-defined]
            for pri in reversed(self.priority_steps)
            for queue in queues
        ]
        keys.append(timeout or 0)
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        command_args = ["BRPOP", *keys]
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        with self.conn_or_acquire() as client:
            for priority in reversed(self.priority_steps):
                item = client.rpop(self._q_for_pri(queue, priority))  # type: ignore[attr-defined]
                if item:
                    message = self._checked(item, queue)
                    if message is not None:
                        return message
        raise Empty()

    def _checked(self, item: bytes, queue: str) -> dict[str, Any] | None:
        """The envelope to deliver, or None once the item is dealt with here."""
        config = self.skillq
        found = inspect(item, config.settings.max_args_depth, task=not queue.endswith(".pidbox"))
        if found.message is None:
            self._dead_letter(item, queue, found)
            return None
        if self._belongs_elsewhere(found, item, queue):
            return None
        if self._parked(found.message, item, queue):
            return None
        # A tag of this delivery's own: a stale run's late acknowledgement then
        # never removes the entry of the delivery that took its job over.
        found.message["properties"]["delivery_tag"] = uuid.uuid4().hex
        remember(self, found.message, found.body)
        self.__dict__["_requeue_pause"] = REQUEUE_PAUSE_FIRST
        self.__dict__.pop("_foreign_streak", None)
        return found.message

    def _belongs_elsewhere(self, found: Inspection, item: bytes, queue: str) -> bool:
        """Put back a job for a skill this worker lacks but another serves (or will)."""
        config = self.skillq
        if not found.task.startswith(TASK_PREFIX) or found.task in config.tasks:
            return False
        from ..store.registry import served_within

        skill = found.task.removeprefix(TASK_PREFIX)
        try:
            raw = self._skillq_redis().hget(config.keys.catalog, skill)
            entry = json.loads(raw) if raw else None
        except (RedisError, ValueError) as exc:
            log.warning("cannot read the skill catalog (%s); requeueing job %s", exc, found.job_id)
            entry = {"last_seen": time.time()}
        if not served_within(entry, config.settings.skill_grace):
            return False  # nothing serves it: Celery fails it as an unknown skill
        priority = self._get_message_priority(found.message)
        target = self._q_for_pri(queue, priority)  # type: ignore[attr-defined]

        def put_back() -> None:
            with self.conn_or_acquire() as client:
                client.lpush(target, item)

        self._outlast(f"putting back job {found.job_id}", put_back)
        log.info(
            "job %s is for skill %r, which this worker does not serve; put back on queue %r "
            "for a worker that does",
            found.job_id,
            skill,
            queue,
        )
        # Put back at the far end, so the next read is the next job in the queue,
        # at once: a backlog of jobs for others never delays ours. Only when the
        # same job comes round again (every job queued here is someone else's)
        # does the worker pause, so an idle one does not spin through them.
        streak: set[str] = self.__dict__.setdefault("_foreign_streak", set())
        key = found.job_id or str(hash(item))
        if key in streak or len(streak) >= FOREIGN_STREAK_MAX:
            streak.clear()
            pause: float = self.__dict__.get("_requeue_pause", REQUEUE_PAUSE_FIRST)
            self.__dict__["_requeue_pause"] = min(pause * 2, REQUEUE_PAUSE_MAX)
            time.sleep(pause)
        streak.add(key)
        return True

    def _parked(self, message: dict[str, Any], item: bytes, queue: str) -> bool:
        """Park a message whose eta is ahead in Redis (:mod:`worker.runtime.delays`)."""
        eta = delays.eta_seconds(message)
        if eta is None or eta - time.time() <= delays.PARK_AFTER:
            return False
        config = self.skillq
        target = self._q_for_pri(queue, self._get_message_priority(message))  # type: ignore[attr-defined]

        def park() -> bool:
            with self.conn_or_acquire() as client:
                return delays.park(client, config.keys, message, eta, target, item)

        headers = message.get("headers") or {}
        if not self._outlast(f"parking delayed job {headers.get('id')}", park):
            return False
        delays.promoter_for(config.settings, config.keys).wake()
        job_id, task = str(headers.get("id") or ""), str(headers.get("task") or "")
        if task.startswith(TASK_PREFIX) and JOB_ID.match(job_id):
            try:  # a plain producer's job has no record yet: queued, with its eta
                self._records().received(job_id, task.removeprefix(TASK_PREFIX), queue, eta)
            except RedisError as exc:
                log.error("cannot record the delayed job %s: %s", job_id, exc)
        return True

    def _skillq_redis(self) -> Any:
        client = self.__dict__.get("_skillq_client")
        if client is None:
            from ..store.connections import sync_redis

            client = self.__dict__["_skillq_client"] = sync_redis(self.skillq.settings)
        return client

    def _outlast(self, what: str, step: Callable[[], T]) -> T:
        """A step on a message already popped off its list, so only in memory
        here: retried through a Redis outage (a restart, a failover) as the
        take is, or the message would be lost."""
        return outlast(self.skillq.settings.redis_outage_budget, what, step)

    def _dead_letter(self, item: bytes, queue: str, found: Inspection) -> None:
        def keep() -> None:
            with self.conn_or_acquire() as client:
                refusals.dead_letter(client, self.skillq.keys, item, queue, found)

        self._outlast(f"dead-lettering job {found.job_id or '(unnamed)'}", keep)
        refusals.fail_job(self._records(), self.skillq.settings, self.skillq.keys, found)

    def _records(self) -> Any:
        """Job records on skillq's Redis, for jobs the transport decides about."""
        records = self.__dict__.get("_skillq_records")
        if records is None:
            from ..store.jobs import JobRecords

            config = self.skillq
            records = JobRecords(self._skillq_redis(), config.keys, config.settings)
            self.__dict__["_skillq_records"] = records
        return records


class Transport(kombu_redis.Transport):
    Channel = Channel

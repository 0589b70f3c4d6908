"""A job's Celery message, built by skillq so the ``SUBMIT`` script can queue it.

Celery's ``send_task`` costs a client more CPU than the rest of a submission
together (routing, ``as_task_v2``, kombu's producer, a new redis-py client per
publish) and one more round trip after the record is written. When the broker
is a database of skillq's own Redis server, the client builds the very message
``send_task`` would queue (task protocol 2, JSON, kombu's Redis envelope) and
``SUBMIT`` pushes it in the same script that records the job: one round trip,
and never a record without its message or a message without its record.

The message is what kombu's Redis transport pushes for ``send_task(name,
kwargs=..., task_id=..., queue=...)`` with skillq's configuration;
``tests/wire/test_task_message.py`` compares the two field by field, so a Celery or
kombu upgrade that changes the format fails there. Celery's publish signals do
not fire for these messages; ``SKILLQ_DIRECT_PUBLISH=false`` sends every job
through ``send_task`` instead.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ..core.settings import Settings
from ..store.connections import database_beside
from ..store.events import dumps

CALLBACKS = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
# Celery's saferepr limit for argsrepr/kwargsrepr (task_protocol 2).
REPR_LIMIT = 1024
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: <queue><sep><priority>


def priority_list(queue: str, priority: int) -> str:
    """The Redis list kombu keeps a queue's messages of this priority in."""
    return f"{queue}{PRIORITY_SEP}{priority}" if priority else queue


@dataclass(frozen=True)
class DirectPublish:
    """Where and how the client queues messages itself."""

    database: str  # the broker's database, or "" for skillq's own
    origin: str  # Celery's ``origin`` header: which process sent the job
    reply_to: str

    @classmethod
    def for_settings(cls, settings: Settings) -> DirectPublish | None:
        """None when ``SUBMIT`` cannot reach the broker (another server, not Redis)."""
        if not settings.direct_publish:
            return None
        database = database_beside(settings.broker_url, settings.effective_redis_url)
        if database is None:
            return None
        return cls(database, f"gen{os.getpid()}@{socket.gethostname()}", str(uuid.uuid4()))

    def message(
        self,
        job_id: str,
        task: str,
        queue: str,
        kwargs_json: str,
        kwargs_repr: str,
        *,
        repr_given: bool = False,
        eta: str | None = None,
        priority: int = 0,
        extra_headers: Mapping[str, str] | None = None,
        hard_limit: float | None = None,
    ) -> str:
        """The kombu Redis envelope of task protocol 2 for ``task(**kwargs)``.

        ``repr_given``: the producer chose the ``kwargsrepr`` (to hide a grant);
        ``send_task(kwargsrepr=...)`` then also copies it into the properties.
        """
        body = "[[]," + kwargs_json + "," + CALLBACKS + "]"
        job = dumps(job_id)
        if len(kwargs_repr) > REPR_LIMIT:
            kwargs_repr = kwargs_repr[: REPR_LIMIT - 3] + "..."
        headers = (
            '{"lang":"py","task":' + dumps(task) + ',"id":' + job + ',"shadow":null,'
            '"eta":' + (dumps(eta) if eta else "null") + ',"expires":null,"group":null,'
            '"group_index":null,"retries":0,'
            '"timelimit":['
            + ("null" if hard_limit is None else dumps(hard_limit))
            + ',null],"root_id":'
            + job
            + ',"parent_id":null,'
            '"argsrepr":"()","kwargsrepr":'
            + dumps(kwargs_repr)
            + ',"origin":'
            + dumps(self.origin)
            + ',"ignore_result":null,"replaced_task_nesting":0,'
            '"stamped_headers":null,"stamps":{}'
            + "".join(
                "," + dumps(name) + ":" + dumps(value)
                for name, value in (extra_headers or {}).items()
            )
            + "}"
        )
        given = ',"kwargsrepr":' + dumps(kwargs_repr) if repr_given else ""
        properties = (
            '{"correlation_id":' + job + given + ',"reply_to":' + dumps(self.reply_to) + ","
            '"delivery_mode":2,"delivery_info":{"exchange":"","routing_key":'
            + dumps(queue)
            + '},"priority":'
            + str(priority)
            + ',"body_encoding":"base64","delivery_tag":'
            + dumps(str(uuid.uuid4()))
            + "}"
        )
        return (
            '{"body":"' + base64.b64encode(body.encode()).decode() + '",'
            '"content-encoding":"utf-8","content-type":"application/json",'
            '"headers":' + headers + ',"properties":' + properties + "}"
        )

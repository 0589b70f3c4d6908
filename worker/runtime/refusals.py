"""What the transport does with a queue item it will not deliver: keep it in
the dead-letter list with the reason, and fail the job it names, so its
producer hears why instead of waiting forever."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..core.errors import MessageRefused
from ..core.settings import Settings
from ..interface.skills import TASK_PREFIX
from ..store.artifacts import JOB_ID
from ..store.celery_results import fused, meta_json, meta_key
from ..store.job_status import job_error
from ..store.keys import Keys
from ..wire.envelope import Inspection

log = logging.getLogger(__name__)

DEAD_LETTER_MAX = 10_000
RAW_KEPT_BYTES = 64 * 1024


def dead_letter(client: Any, keys: Keys, item: bytes, queue: str, found: Inspection) -> None:
    """Keep the item (its first 64 KiB) with the reason, newest first, bounded."""
    key = keys.dead_letters
    record = json.dumps(
        {
            "queue": queue,
            "reason": found.reason,
            "job_id": found.job_id,
            "task": found.task,
            "at": time.time(),
            "raw_base64": base64.b64encode(item[:RAW_KEPT_BYTES]).decode(),
            "raw_bytes": len(item),
        }
    )
    log.error(
        "dead-lettered an item from queue %r (%d bytes): %s; kept in %s",
        queue,
        len(item),
        found.reason,
        key,
    )
    try:
        with client.pipeline() as pipe:
            pipe.lpush(key, record)
            pipe.ltrim(key, 0, DEAD_LETTER_MAX - 1)
            pipe.execute()
    except (RedisError, OSError) as exc:
        log.error("cannot store the dead letter: %s", exc)


def fail_job(records: Any, settings: Settings, keys: Keys, found: Inspection) -> None:
    """If the item names a skill job, record why it will never run.

    A raw producer that sent, say, pickle then sees a failed job (and
    ``AsyncResult.get()`` raises) instead of waiting forever.
    """
    job_id, task = found.job_id, found.task
    if not job_id or not JOB_ID.match(job_id) or not task.startswith(TASK_PREFIX):
        return
    try:
        error = job_error(MessageRefused(found.reason, keys.dead_letters), with_traceback=False)
        meta = (meta_key(job_id), meta_json(job_id, "failed", error=error))
        if fused(settings):
            records.finish(job_id, "failed", worker="", error=error, celery_meta=meta)
        else:  # Celery never sees this message: its result backend learns from us
            records.finish(job_id, "failed", worker="", error=error)
            records.store_celery_meta(*meta)
    except Exception as exc:  # the dead letter is already kept
        log.error("cannot record the refusal of job %s: %s", job_id, exc)

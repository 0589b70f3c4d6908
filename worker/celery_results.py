"""Writing Celery's result meta inside skillq's own FINISH script.

Celery stores every task's outcome with one more Redis round trip of its
own. When the result backend is the same Redis as skillq's records, skillq
writes Celery's meta (the same key, JSON and pub/sub notice that Celery's
Redis backend writes) in the script that finishes the job, and its tasks run
with ``ignore_result``: one round trip less per job, and
``AsyncResult(job_id).get()`` behaves exactly as before.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from .jobs import JobError
from .settings import Settings

META_PREFIX = "celery-task-meta-"


def fused(settings: Settings) -> bool:
    """Whether Celery's results live in skillq's Redis (so one script can write both)."""
    backend = settings.effective_result_backend
    return backend.startswith(("redis://", "rediss://")) and backend == settings.effective_redis_url


def meta_key(job_id: str) -> str:
    return META_PREFIX + job_id


def meta_json(job_id: str, state: str, result: Any = None, error: JobError | None = None) -> str:
    """Celery's meta for a finished task, as its JSON backend encodes it."""
    if state == "succeeded":
        status, value = "SUCCESS", result
    elif state == "cancelled":
        status = "REVOKED"
        value = {
            "exc_type": "TaskRevokedError",
            "exc_message": ["cancelled"],
            "exc_module": "celery.exceptions",
        }
    else:
        status = "FAILURE"
        value = {
            "exc_type": "JobFailed",
            "exc_message": [
                job_id,
                error.type if error else "Error",
                error.message if error else "failed",
                error.code if error else "handler_error",
            ],
            "exc_module": "worker.errors",
        }
    return json.dumps(
        {
            "status": status,
            "result": value,
            "traceback": error.traceback if error is not None else None,
            "children": [],
            "date_done": datetime.datetime.now(datetime.UTC).isoformat(),
            "task_id": job_id,
        },
        separators=(",", ":"),
    )

"""Writing Celery's result meta inside skillq's own FINISH script.

Celery stores every task's outcome with one more Redis round trip of its
own. When the result backend is the same Redis server as skillq's records,
skillq writes Celery's meta (the same key, JSON and pub/sub notice that
Celery's Redis backend writes) in the script that finishes the job, and its
tasks run with ``ignore_result``: one round trip less per job, and
``AsyncResult(job_id).get()`` behaves exactly as before.

A result backend on another database of the same server (a common layout:
broker, results and skillq on databases 0, 1, 2) is fused too: the script
``SELECT``s the backend's database for the meta and back (a script's
``SELECT`` never affects the calling connection). Pub/sub channels are
server-wide, so the notice reaches Celery's result consumers either way.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from ..core.errors import ConfigurationError
from ..core.settings import Settings
from .connections import database_beside, database_number
from .job_status import JobError

META_PREFIX = "celery-task-meta-"


def meta_database(settings: Settings) -> str | None:
    """Where skillq's scripts write Celery's meta: ``""`` in skillq's own database,
    a database number on the same server, or None (another server: Celery writes it)."""
    return database_beside(settings.effective_result_backend, settings.effective_redis_url)


def records_database(settings: Settings) -> str:
    try:
        return str(database_number(settings.effective_redis_url))
    except (ValueError, ConfigurationError):
        return "0"


def fused(settings: Settings) -> bool:
    """Whether Celery's results live on skillq's Redis server (so one script writes both)."""
    return meta_database(settings) is not None


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
            "exc_module": "worker.core.errors",
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

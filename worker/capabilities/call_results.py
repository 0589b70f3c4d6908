"""What identifies a call across its caller's runs, and the :class:`CallResult`
a child's record makes: pure functions :mod:`worker.capabilities.calls` uses."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from ..interface.a2a import CallResult
from ..store.job_status import JobStatus


def call_key(
    parent: str,
    number: int,
    target: str,
    skill: str,
    args: dict[str, Any],
    grant: str | None,
) -> str:
    """What makes a call the same call on the caller's next run."""
    text = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + (grant or "").encode("utf-8", "surrogatepass"))
    return f"{parent}/{number}/{target}/{skill}/{digest.hexdigest()}"


def child_job_id(key: str, generation: int) -> str:
    """The child's job id: the same for the same call, a new one per generation."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"skillq-call:{key}/{generation}"))


def refused(error: str, child: str | None = None) -> CallResult:
    return CallResult(ok=False, error=error, task_id=child)


def result_of(status: JobStatus, *, timed_out: float | None) -> CallResult:
    artifacts = [item.ref() for item in status.artifacts]
    if status.state == "succeeded":
        return CallResult(
            ok=True, output=status.result, task_id=status.id, state="succeeded", artifacts=artifacts
        )
    if timed_out is not None:
        error = f"timed out after {timed_out:g} s; the child job was cancelled"
    elif status.state == "cancelled":
        error = "the child job was cancelled"
    elif status.error is not None:
        error = f"{status.error.type}: {status.error.message}"
    else:
        error = f"the child job is {status.state}"
    return CallResult(
        ok=False, error=error, task_id=status.id, state=status.state, artifacts=artifacts
    )

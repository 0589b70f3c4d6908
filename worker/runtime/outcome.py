"""How one delivery of a job ended, as the runner tells the Celery task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..store.job_status import JobError

# "superseded": this run's lease lapsed and another delivery took the job over.
# "suspended": the attempt ended to wait (ctx.sleep); the job runs again later.
Final = Literal[
    "succeeded", "failed", "cancelled", "retrying", "waiting", "superseded", "suspended"
]


@dataclass(frozen=True)
class Outcome:
    state: Final
    result: Any = None
    error: JobError | None = None
    celery_stored: bool = False  # Celery's result meta is already written
    signed_until: int | None = None  # a signed call: refuse replays until then
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    delay: float | None = None  # "retrying"/"waiting": seconds until the next attempt

    def but(self, **changes: Any) -> Outcome:
        """A copy with ``changes`` (``dataclasses.replace`` reads the fields anew on
        every call: measurable on a path every job takes twice)."""
        return Outcome(**{**self.__dict__, **changes})

"""When a failed attempt runs again: the skill's retry policy.

Exponential backoff with "equal jitter" (half the delay fixed, half random),
as in the AWS Architecture Blog's "Exponential Backoff And Jitter": retries
of many jobs that failed together spread out instead of arriving together.
"""

from __future__ import annotations

import random

from ..core.errors import (
    BudgetExceeded,
    ConfigurationError,
    HandlerAborted,
    InvalidArgs,
    InvalidAuth,
    InvalidGrant,
    QuotaExceeded,
    WorkspaceDenied,
)
from .context import CancelledByCaller, MissingScopes
from .skills import Skill

# What another attempt cannot fix: the call itself is wrong, or was cancelled.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    InvalidArgs,
    InvalidAuth,
    MissingScopes,
    CancelledByCaller,
    InvalidGrant,
    WorkspaceDenied,
    ConfigurationError,
    HandlerAborted,
    BudgetExceeded,
    QuotaExceeded,
)


def retry_delay(skill: Skill, error: BaseException | None, retries_so_far: int) -> float | None:
    """Seconds until the next attempt, or None when this failure is final."""
    if error is None or retries_so_far >= skill.retries:
        return None
    if isinstance(error, NEVER_RETRIED) or not isinstance(error, skill.retry_on):
        return None
    delay = min(skill.backoff_max, skill.backoff * 2.0**retries_so_far)
    if skill.jitter:
        delay = delay / 2 + random.uniform(0, delay / 2)
    return delay

"""The checks of a submission's options that do not need the skill: what args
(and an answer to ``ctx.ask``) may be, when a job may start, its priority, its
budget, what a signature covers, which numbers and texts are acceptable. Pure
functions, re-exported by :mod:`worker.wire.submission`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core.errors import InvalidArgs, InvalidSubmission
from ..core.settings import Settings
from ..interface.budgets import checked_budget
from ..store.events import dumps
from .envelope import nesting_depth_over


def checked_json(skill: str, value: Any, settings: Settings, what: str = "args") -> str:
    """``value`` as the compact JSON stored for it, if it is what args may be:
    nested at most ``SKILLQ_MAX_ARGS_DEPTH`` deep, JSON (no NaN or Infinity, no
    integer too long to print, no lone surrogate) and at most
    ``SKILLQ_MAX_ARGS_BYTES`` as UTF-8. Depth is measured first and without
    recursion, so a value deeper than Python's stack is refused, never a
    RecursionError; every refusal is :class:`InvalidArgs`, raised before
    anything is written."""
    are, nest, hold = ("are", "nest", "hold") if what == "args" else ("is", "nests", "holds")
    limit = settings.max_args_depth
    if nesting_depth_over(value, limit):
        message = f"{what} {nest} deeper than {limit} levels (SKILLQ_MAX_ARGS_DEPTH)"
        raise InvalidArgs(skill, message)
    try:
        encoded = dumps(value)
        size = len(encoded.encode())
    except UnicodeEncodeError as exc:
        raise InvalidArgs(
            skill,
            f"{what} {hold} a lone surrogate ({exc.object[exc.start : exc.end]!r}), which is "
            "not Unicode text and has no UTF-8 encoding",
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgs(skill, f"{what} {are} not JSON: {exc}") from exc
    if size > settings.max_args_bytes:
        message = f"{what} {are} over the {settings.max_args_bytes}-byte limit"
        raise InvalidArgs(skill, message + " (SKILLQ_MAX_ARGS_BYTES)")
    return encoded


def budget_argv(skill: str, budget: Mapping[str, float] | None) -> str:
    """``SUBMIT``'s budget: ``{unit: ceiling}`` with each ceiling as exact text."""
    try:
        checked = checked_budget(budget)
    except InvalidArgs as exc:
        raise InvalidSubmission(skill, str(exc)) from None
    return json.dumps({unit: repr(ceiling) for unit, ceiling in checked.items()}) if checked else ""


def checked_priority(skill: str, priority: int | None) -> int:
    """A job priority: an integer from 0 (the default) to 9, the most urgent."""
    if priority is None:
        return 0
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidSubmission(skill, f"priority must be an integer from 0 to 9, not {priority!r}")
    return priority


MAX_DELAY = 10 * 366 * 86400.0  # seconds: a job may wait in Redis up to ten years


def eta_of(countdown: float | None, eta: datetime | float | None) -> float | None:
    """When a job may start, from a countdown (seconds) or an eta (a datetime, or Unix
    seconds); None for at once. Any delay up to :data:`MAX_DELAY` is held in
    Redis (:mod:`worker.runtime.delays`)."""
    when = _eta_of(countdown, eta)
    if when is None:
        return None
    now = time.time()
    if when - now > MAX_DELAY:
        raise InvalidSubmission("", "a job may be delayed at most ten years")
    # A time already past means at once (and a date before year 1 is no date).
    return max(when, now)


def _eta_of(countdown: float | None, eta: datetime | float | None) -> float | None:
    if countdown is not None and eta is not None:
        raise InvalidSubmission("", "give countdown or eta, not both")
    if countdown is not None:
        if not finite_number(countdown) or not countdown >= 0:
            raise InvalidSubmission("", f"countdown must be >= 0 seconds, not {countdown!r}")
        return time.time() + float(countdown)
    if isinstance(eta, datetime):
        if eta.tzinfo is None:
            raise InvalidSubmission("", "eta must be timezone-aware (e.g. datetime.now(UTC))")
        return eta.timestamp()
    if eta is None:
        return None
    if not finite_number(eta):
        raise InvalidSubmission("", f"eta must be an aware datetime or Unix seconds, not {eta!r}")
    return float(eta)


def signed_options(concurrency_key: str | None, time_limit: float | None) -> dict[str, Any]:
    """The call options a signature covers besides args, claims and grant."""
    found: dict[str, Any] = {}
    if concurrency_key is not None:
        found["concurrency_key"] = concurrency_key
    if time_limit is not None:
        found["time_limit"] = float(time_limit)
    return found


def finite_number(value: object) -> bool:
    """A real number a float holds (not NaN, not infinite, not a 400-digit int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def printable(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and all(32 <= ord(char) != 127 for char in value)

"""Units, amounts and quotas: the checks a spend, a budget and a quota share,
here so that :class:`~worker.core.settings.Settings` can check
``SKILLQ_DEFAULT_QUOTA`` when it is read."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .errors import InvalidArgs

# Matched whole (fullmatch): with re.match, "$" also matches before a final
# newline, so "usd\n" passed as a unit of its own that no "usd" spend meets.
UNIT = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_AMOUNT = 1e15
QUOTA = re.compile(r"\s*([a-z][a-z0-9_]*)\s*=\s*([0-9.eE+]+)\s*/\s*([0-9.]*)\s*([a-z]+)\s*")


def checked_unit(unit: object) -> str:
    if not isinstance(unit, str) or not UNIT.fullmatch(unit):
        raise InvalidArgs(
            "spend", f"a unit is 1-32 lowercase letters, digits or _ (e.g. 'usd'), not {unit!r}"
        )
    return unit


def checked_amount(amount: object, what: str = "an amount") -> float:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidArgs("spend", f"{what} is a number, not {type(amount).__name__}")
    try:
        value = float(amount)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidArgs("spend", f"{what} is 0 to {MAX_AMOUNT:g}, not {amount!r}")
    return value


PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
NAMED = {"second": "s", "minute": "m", "hour": "h", "day": "d", "week": "w"}


@dataclass(frozen=True)
class Quota:
    """What an owner's jobs may spend of one unit per period (seconds)."""

    limit: float
    period: float

    def as_json(self) -> list[float]:
        return [self.limit, self.period]


def parse_quotas(text: str) -> dict[str, Quota]:
    """``"usd=20/day, tokens=200000/6h"`` as ``{unit: Quota}``."""
    found: dict[str, Quota] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = QUOTA.fullmatch(part)
        suffix = NAMED.get(match[4], match[4]) if match else ""
        if match is None or suffix not in PERIODS:
            raise InvalidArgs(
                "quota",
                f"a quota is UNIT=AMOUNT/PERIOD (e.g. usd=20/day, tokens=5e5/6h), not {part!r}",
            )
        count = float(match[3]) if match[3] else 1.0
        period = count * PERIODS[suffix]
        if not math.isfinite(period) or not 1 <= period <= 366 * 86400:
            raise InvalidArgs("quota", f"a quota's period is 1 s to a year, not {part!r}")
        found[checked_unit(match[1])] = Quota(checked_amount(float(match[2]), "a quota"), period)
    return found


def quotas_json(quotas: dict[str, Quota]) -> str:
    return json.dumps({unit: quota.as_json() for unit, quota in sorted(quotas.items())})


def from_json(text: str | bytes) -> dict[str, Quota]:
    raw = json.loads(text)
    return {unit: Quota(float(pair[0]), float(pair[1])) for unit, pair in raw.items()}

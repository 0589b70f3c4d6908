"""Budgets: ``await ctx.spend(amount, unit="usd")`` against ceilings the queue
enforces, outside the agent's own code.

A job's ceiling per unit comes from its submit (``budget=``), else its
skill's ``@skill(budget=...)``; a child made by ``ctx.call`` spends against
its own ceiling *and* every ancestor's, so a call tree shares its root's
budget however its children interleave. A spend that would cross any of
them (or its owner's quota for the period) raises :class:`BudgetExceeded`
before anything is recorded. On a worker the check and the record are one
Redis script (:mod:`worker.store.budgets`); :class:`LocalLedger` does the
same in memory for unit tests.

``@skill(on_budget="ask")`` turns a crossing into a question to the job's
owner (``ctx.ask``): "raise the budget by ...?". The question's number comes
from the crossing itself (the job, the unit and the ceiling crossed), not
from the order of the handler's asks, so a job that runs again from the top
asks, and applies an answer, once.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from ..core.errors import BudgetExceeded, InvalidArgs
from ..core.quotas import MAX_AMOUNT, checked_amount, checked_unit

OnBudget = Literal["fail", "ask"]
BUDGET_ASKS = 1_000_000_000  # budget questions are numbered from here up


def checked_budget(budget: Mapping[str, Any] | None) -> dict[str, float]:
    """A budget as ``{unit: ceiling}``: units checked, ceilings finite and >= 0."""
    if budget is None:
        return {}
    if not isinstance(budget, Mapping):
        raise InvalidArgs("budget", f"a budget is {{unit: amount}}, not {type(budget).__name__}")
    if len(budget) > 16:
        raise InvalidArgs("budget", "a budget names at most 16 units")
    return {checked_unit(u): checked_amount(v, f"the budget for {u}") for u, v in budget.items()}


class RaiseBudget(BaseModel):
    """The answer to a budget question: how much to add (0 to let the job fail)."""

    raise_by: float = Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)


def budget_question(crossed: BudgetExceeded, needed: float) -> str:
    return (
        f"Job {crossed.job_id} would pass its {crossed.unit} budget: {crossed.spent:g} of "
        f"{crossed.ceiling:g} spent, {crossed.amount:g} more asked. Raise the budget by "
        f"at least {needed:g} {crossed.unit}?"
    )


def question_number(crossed: BudgetExceeded) -> int:
    """The same crossing (job, unit, ceiling) is the same question on every run."""
    key = f"{crossed.job_id}\0{crossed.unit}\0{crossed.ceiling!r}".encode()
    return BUDGET_ASKS + zlib.crc32(key)


class Ledger(Protocol):
    """Where a context's spending is checked and kept."""

    async def spend(self, amount: float, unit: str) -> float:
        """Record ``amount``; what is left under the nearest ceiling (inf for none).
        Raises :class:`BudgetExceeded` (or ``QuotaExceeded``), recording nothing."""

    async def raise_budget(self, crossed: BudgetExceeded, by: float, marker: int) -> None:
        """Add ``by`` to the ceiling ``crossed`` names, once per ``marker``."""


Asker = Callable[[int, str], Awaitable[RaiseBudget]]


async def spend(
    ledger: Ledger, amount: float, unit: str, on_budget: OnBudget, ask: Asker | None
) -> float:
    """``ctx.spend``: record it, or ask the owner to raise the ceiling it crosses."""
    value, unit = checked_amount(amount), checked_unit(unit)
    try:
        return await ledger.spend(value, unit)
    except BudgetExceeded as crossed:
        if on_budget != "ask" or ask is None:
            raise
        needed = crossed.spent + crossed.amount - crossed.ceiling
        number = question_number(crossed)
        answer = await ask(number, budget_question(crossed, needed))
        if answer.raise_by < needed:
            raise
        await ledger.raise_budget(crossed, answer.raise_by, number)
        return await ledger.spend(value, unit)


class LocalLedger:
    """A ledger in memory for ``LocalRunContext``: one job, no quota."""

    def __init__(self, job_id: str, budget: Mapping[str, Any] | None) -> None:
        self.job_id = job_id
        self.budget = checked_budget(budget)
        self.spent: dict[str, float] = {}
        self.raised: set[int] = set()

    async def spend(self, amount: float, unit: str) -> float:
        spent = self.spent.get(unit, 0.0)
        ceiling = self.budget.get(unit)
        if ceiling is not None and spent + amount > ceiling * (1 + 1e-12):
            raise BudgetExceeded(self.job_id, unit, amount, spent, ceiling)
        self.spent[unit] = spent + amount
        return math.inf if ceiling is None else ceiling - self.spent[unit]

    async def raise_budget(self, crossed: BudgetExceeded, by: float, marker: int) -> None:
        if marker not in self.raised:
            self.raised.add(marker)
            self.budget[crossed.unit] = self.budget.get(crossed.unit, 0.0) + by

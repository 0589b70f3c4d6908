"""The ``@skill`` decorator and skill discovery.

The decorator does not register anything globally: it turns the handler into
a :class:`Skill` value, and :func:`load_skills` finds those values in the
modules named by ``SKILLQ_SKILLS``. Two apps (or two tests) in one process
therefore never share a registry.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter

from ..core.errors import ConfigurationError, InvalidArgs
from .auth import NoAuth
from .budgets import OnBudget, checked_budget
from .context import RunContext

SKILL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
TASK_PREFIX = "skills."

Handler = Callable[[RunContext[Any], Any], Awaitable[Any]]


class AnyArgs(BaseModel):
    """Args model for skills that declare none: any JSON object is accepted."""

    model_config = ConfigDict(extra="allow")


RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*\Z")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Rate:
    """Starts allowed per period, e.g. ``100/m``."""

    count: int
    period: float  # seconds
    text: str

    @classmethod
    def parse(cls, skill: str, text: str) -> Rate:
        found = RATE.match(text) if isinstance(text, str) else None
        if found is None or int(found[1]) < 1 or found[2] == "0":
            raise ConfigurationError(
                f"skill {skill!r}: rate_limit {text!r} must look like '100/m' "
                "(a positive count per s, m or h, or per e.g. 10s)"
            )
        period = int(found[2] or 1) * UNIT_SECONDS[found[3]]
        return cls(int(found[1]), float(period), text.strip())

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.period / self.count


@dataclass(frozen=True)
class Skill:
    """A handler plus everything the runtime needs to call it safely."""

    name: str
    handler: Handler
    args: type[BaseModel] = AnyArgs
    auth: type[BaseModel] = NoAuth
    result: Any = JsonValue
    scopes: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    queue: str = "default"
    time_limit: float | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    workspace_access: bool = False
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    backoff: float = 1.0
    backoff_max: float = 60.0
    jitter: bool = True
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate_limit: Rate | None = None
    budget: Mapping[str, float] = field(default_factory=dict, compare=False)
    on_budget: OnBudget = "fail"
    result_adapter: TypeAdapter[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "result_adapter", TypeAdapter(self.result))

    @property
    def task_name(self) -> str:
        return TASK_PREFIX + self.name

    def __call__(self, ctx: RunContext[Any], args: Any) -> Awaitable[Any]:
        """Call the handler directly, e.g. with a ``LocalRunContext`` in unit tests."""
        return self.handler(ctx, args)

    def args_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    def describe(self) -> dict[str, Any]:
        """The JSON description a worker publishes for clients."""
        return {
            "name": self.name,
            "description": self.description,
            "queue": self.queue,
            "tags": list(self.tags),
            "scopes": list(self.scopes),
            "secrets": list(self.secrets),
            "time_limit": self.time_limit,
            "args_schema": self.args_schema(),
            "workspace_access": self.workspace_access,
            "retries": self.retries,
            "concurrency": self.concurrency,
            "key_concurrency": self.key_concurrency,
            "rate_limit": None if self.rate_limit is None else self.rate_limit.text,
        }

    @property
    def limited(self) -> bool:
        """Whether starting a job must first ask the deployment-wide limits."""
        return bool(self.concurrency or self.key_concurrency or self.rate_limit)


def skill(
    name: str,
    *,
    args: type[BaseModel] = AnyArgs,
    auth: type[BaseModel] = NoAuth,
    result: Any = JsonValue,
    scopes: Sequence[str] = (),
    secrets: Sequence[str] = (),
    queue: str = "default",
    time_limit: float | None = None,
    description: str = "",
    tags: Sequence[str] = (),
    workspace_access: bool = False,
    retries: int = 0,
    retry_on: Sequence[type[BaseException]] = (Exception,),
    backoff: float = 1.0,
    backoff_max: float = 60.0,
    jitter: bool = True,
    concurrency: int | None = None,
    key_concurrency: int | None = None,
    rate_limit: str | None = None,
    budget: Mapping[str, float] | None = None,
    on_budget: OnBudget = "fail",
) -> Callable[[Handler], Skill]:
    """Declare an async handler as a skill served by skillq workers.

    ``workspace_access=True``: the skill may use ``ctx.workspace`` with a grant
    its caller passes; without it a grant is refused, so a skill cannot be
    handed more than it declared it would use.

    ``retries=N``: an attempt that fails with one of ``retry_on`` runs again,
    up to N more times, after ``backoff * 2**k`` seconds (at most
    ``backoff_max``; with ``jitter``, between half and all of it). Invalid
    args or auth, missing scopes, refused grants and cancels never retry.

    Limits hold across every worker of the deployment (see
    :mod:`worker.store.limits`): ``concurrency=N`` runs at most N jobs of the
    skill at once; ``key_concurrency=M`` at most M per ``concurrency_key``
    given at submit; ``rate_limit="100/m"`` (``/s``, ``/m``, ``/h``, or e.g.
    ``"5/10s"``) spaces starts evenly at that rate. A job over a limit waits
    in its queue (re-queued with a delay), never in a pool slot.

    ``budget={"usd": 1.0}``: what a job of the skill may ``ctx.spend`` per unit
    unless its submit gives less; ``on_budget="ask"``: a spend that would
    cross a ceiling asks the job's owner to raise it instead of failing the
    job with ``BudgetExceeded`` (:mod:`worker.interface.budgets`).
    """
    if not SKILL_NAME.match(name):
        raise ConfigurationError(
            f"invalid skill name {name!r}: use letters, digits, '_', '.', '-' (max 128)"
        )
    if not SKILL_NAME.match(queue):
        raise ConfigurationError(f"invalid queue name {queue!r} for skill {name!r}")
    if time_limit is not None and time_limit <= 0:
        raise ConfigurationError(f"time_limit of skill {name!r} must be positive")
    if retries < 0 or not 0 < backoff <= backoff_max:
        raise ConfigurationError(
            f"skill {name!r}: retries must be >= 0 and 0 < backoff <= backoff_max"
        )
    if not all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on):
        raise ConfigurationError(f"skill {name!r}: retry_on takes exception classes")
    for label, cap in (("concurrency", concurrency), ("key_concurrency", key_concurrency)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigurationError(f"skill {name!r}: {label} must be a positive integer")
    rate = None if rate_limit is None else Rate.parse(name, rate_limit)
    if on_budget not in ("fail", "ask"):
        raise ConfigurationError(f"skill {name!r}: on_budget is 'fail' or 'ask'")
    try:
        ceilings = checked_budget(budget)
    except InvalidArgs as exc:
        raise ConfigurationError(f"skill {name!r}: {exc}") from None

    def decorate(handler: Handler) -> Skill:
        if not is_async(handler):
            what = getattr(handler, "__qualname__", repr(handler))
            raise ConfigurationError(
                f"skill {name!r}: its handler {what} must be an async function: write "
                f"`async def {getattr(handler, '__name__', 'handler')}(ctx, args)` (a plain "
                "function would fail every job when the runner awaits what it returns)"
            )
        return Skill(
            name=name,
            handler=handler,
            args=args,
            auth=auth,
            result=result,
            scopes=tuple(scopes),
            secrets=tuple(secrets),
            queue=queue,
            time_limit=time_limit,
            description=description or (handler.__doc__ or "").strip().split("\n")[0],
            tags=tuple(tags),
            workspace_access=bool(workspace_access),
            retries=int(retries),
            retry_on=tuple(retry_on),
            backoff=float(backoff),
            backoff_max=float(backoff_max),
            jitter=bool(jitter),
            concurrency=concurrency,
            key_concurrency=key_concurrency,
            rate_limit=rate,
            budget=ceilings,
            on_budget=on_budget,
        )

    return decorate


class SkillSet(Mapping[str, Skill]):
    """An immutable name → skill mapping."""

    def __init__(self, skills: Sequence[Skill] = ()) -> None:
        by_name: dict[str, Skill] = {}
        for item in skills:
            other = by_name.get(item.name)
            if other is not None and other.handler is not item.handler:
                raise ConfigurationError(f"skill {item.name!r} is defined twice")
            by_name[item.name] = item
        self._by_name = by_name

    def __getitem__(self, name: str) -> Skill:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def queues(self) -> list[str]:
        return sorted({item.queue for item in self._by_name.values()})


def describe_sources(skills: SkillSet, modules: Sequence[str]) -> tuple[list[str], list[str]]:
    """One line per skill naming the file it came from, and a warning for each
    module in ``SKILLQ_SKILLS`` that was imported from somewhere other than a
    file of the same name in the working directory (one shadows the other)."""
    lines, warnings = [], []
    for name in sorted(skills):
        handler = skills[name].handler
        try:
            where = inspect.getsourcefile(handler) or "?"
        except TypeError:
            where = "?"
        lines.append(f"skill {name!r} ({skills[name].task_name}) from {where}")
    cwd = Path.cwd()
    for module_name in modules:
        module = sys.modules.get(module_name)
        loaded = Path(getattr(module, "__file__", "") or "").resolve()
        relative = Path(*module_name.split("."))
        for local in (cwd / f"{relative}.py", cwd / relative / "__init__.py"):
            if local.exists() and local.resolve() != loaded:
                warnings.append(
                    f"skill module {module_name!r} was imported from {loaded}, "
                    f"not from {local} in the working directory: rename one of them"
                )
    return lines, warnings


def skills_in(module: ModuleType) -> list[Skill]:
    return [value for value in vars(module).values() if isinstance(value, Skill)]


def is_async(handler: Any) -> bool:
    """An ``async def`` (also behind ``functools.partial``, or as ``__call__``)."""
    call = type(handler).__call__ if not inspect.isroutine(handler) else None
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


def load_skills(modules: Sequence[str]) -> SkillSet:
    """Import each module and collect the skills defined at its top level."""
    found: list[Skill] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except SyntaxError as exc:
            where = f"{exc.filename}, line {exc.lineno}" if exc.filename else module_name
            raise ConfigurationError(
                f"skill module {module_name!r} (from SKILLQ_SKILLS) has a syntax error at "
                f"{where}: {exc.msg}"
            ) from None
        except ImportError as exc:
            hint = (
                f"; run the worker from the folder that holds {module_name.split('.')[0]!r}, "
                "or add that folder to PYTHONPATH"
                if getattr(exc, "name", None) == module_name.split(".")[0]
                else ""
            )
            raise ConfigurationError(
                f"cannot import skill module {module_name!r} (from SKILLQ_SKILLS): {exc}{hint}"
            ) from exc
        found.extend(skills_in(module))
    return SkillSet(found)

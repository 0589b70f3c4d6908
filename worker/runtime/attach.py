"""Which capability clients a worker process attaches to its jobs' contexts.

By default every worker attaches discovery (the registry) and calls (child
jobs), workspaces when a grant key is configured (``SKILLQ_GRANT_KEY`` or
``SKILLQ_GRANT_PUBLIC_KEY``), and the sandbox ``SKILLQ_SANDBOX`` selects.
``SKILLQ_CAPABILITIES=module:factory`` names a callable that gets the
settings and returns more clients, or replacements, as a mapping with the
keys ``a2a`` (``ctx.call``), ``discover``, ``workspace`` and ``sandbox`` (or a
:class:`~worker.interface.capabilities.Capabilities`). It is called once at worker
start, so a broken factory stops the worker before it takes a job, and once
for every event loop (each prefork child, each thread of a threads pool), so
its clients belong to the loop that uses them.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from celery import Celery

from ..capabilities.calls import SkillqCaller
from ..capabilities.discovery import RegistryDiscovery
from ..capabilities.sandbox import select_sandbox
from ..capabilities.workspace import WorkspaceProvider
from ..core.errors import ConfigurationError
from ..core.settings import Settings
from ..interface.capabilities import Capabilities
from ..interface.skills import SkillSet
from ..wire.submission import Order
from ..workspace.grants import GrantSigner
from ..workspace.workspace_store import open_workspace_store
from .children import InlineChildren
from .process import ProcessRuntime

Factory = Callable[[Settings], "Mapping[str, Any] | Capabilities"]
DEFAULT_NAMES = ("call", "discover")


def load_factory(spec: str) -> Factory | None:
    """The operator's factory named by ``SKILLQ_CAPABILITIES`` (None if unset)."""
    if not spec.strip():
        return None
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"SKILLQ_CAPABILITIES must be module:factory, not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load SKILLQ_CAPABILITIES={spec!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigurationError(f"SKILLQ_CAPABILITIES={spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def extra(factory: Factory | None, settings: Settings) -> Capabilities:
    """What the factory adds, checked: a broken factory is a configuration error."""
    if factory is None:
        return Capabilities()
    try:
        return Capabilities().merged(factory(settings))
    except Exception as exc:
        raise ConfigurationError(f"SKILLQ_CAPABILITIES factory failed: {exc}") from exc


def announced(factory: Factory | None, settings: Settings) -> list[str]:
    """The capability names a worker's agent lists in the registry."""
    names = {*DEFAULT_NAMES, *extra(factory, settings).names()}
    if GrantSigner.from_settings(settings) is not None:
        names.add("workspace")
    if select_sandbox(settings) is not None:
        names.add("sandbox")
    return sorted(names)


def attach(rt: ProcessRuntime, skills: SkillSet, app: Celery, factory: Factory | None) -> None:
    """Give a loop its clients; runs on that loop, once."""

    async def publish(order: Order) -> None:
        await asyncio.to_thread(order.send, app)

    caller = SkillqCaller(
        rt.settings,
        rt.redis,
        skills,
        inline=InlineChildren(rt, skills),
        publish=publish,
    )
    signer = GrantSigner.from_settings(rt.settings)
    workspace = (
        None
        if signer is None
        else WorkspaceProvider(signer, open_workspace_store(rt.artifacts), rt.redis, rt.keys)
    )
    defaults = Capabilities(
        discover=RegistryDiscovery(rt.redis, rt.keys),
        a2a=caller,
        workspace=workspace,
        sandbox=select_sandbox(rt.settings, quiet=True),
    )
    rt.capabilities = defaults.merged(extra(factory, rt.settings))

"""Which sandbox a worker attaches: ``SKILLQ_SANDBOX``, checked at start.

A backend that was asked for and cannot work stops the worker with a message
that says why, instead of failing every job that uses it later. ``auto``
(the default) uses bubblewrap when it works here and no sandbox when it does
not, and says which in the log.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from pathlib import Path

from ...core.errors import ConfigurationError
from ...core.settings import Settings
from ...interface.capabilities import SandboxClient
from .bwrap import BwrapSandbox
from .execution import python_interpreter
from .limits import Limits
from .unisolated import SubprocessSandbox

log = logging.getLogger(__name__)
CHOICES = "bwrap, subprocess, none, auto or module:factory"


def sandbox_python(settings: Settings) -> Path:
    # As root, bwrap runs each sandbox as an unprivileged user of its own.
    return python_interpreter(settings.sandbox_python, for_others=os.geteuid() == 0)


def select_sandbox(settings: Settings, *, quiet: bool = False) -> SandboxClient | None:
    """The sandbox ``SKILLQ_SANDBOX`` names, probed; None for ``none``.

    ``quiet``: do not log the choice (a worker's processes each select; the
    main process says it once).
    """
    choice = settings.sandbox.strip() or "auto"
    limits = Limits.from_settings(settings)
    if choice == "none":
        return None
    if choice == "auto":
        if shutil.which("bwrap") is None:
            if not quiet:
                log.info("no sandbox: bubblewrap (bwrap) is not installed")
            return None
        try:
            sandbox = BwrapSandbox(limits, sandbox_python(settings))
            sandbox.probe()
        except ConfigurationError as exc:
            if not quiet:
                log.warning("no sandbox: %s", exc)
            return None
        return sandbox
    if choice == "bwrap":
        sandbox = BwrapSandbox(limits, sandbox_python(settings))
        sandbox.probe()
        return sandbox
    if choice == "subprocess":
        if not quiet:
            log.warning(
                "SKILLQ_SANDBOX=subprocess: sandboxed code runs with resource limits but NO "
                "isolation; it can read what this worker reads and reach its network"
            )
        return SubprocessSandbox(limits, python_interpreter(settings.sandbox_python))
    module_name, sep, attribute = choice.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"SKILLQ_SANDBOX must be {CHOICES}, not {choice!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
        made = factory(settings)
    except Exception as exc:
        raise ConfigurationError(f"SKILLQ_SANDBOX={choice!r} failed: {exc}") from exc
    if not isinstance(made, SandboxClient):
        raise ConfigurationError(
            f"SKILLQ_SANDBOX={choice!r} returned {type(made).__name__}, which has no "
            "async run(code, *, language, timeout, files)"
        )
    return made

"""``SKILLQ_SANDBOX=subprocess``: resource limits, no isolation.

The code runs as the worker's user in a temporary directory with an empty
environment and the limits of :class:`~.limits.Limits`; it can read what the
worker can read and reach what the worker can reach. Only for hosts where
bubblewrap cannot run and the code is trusted; the worker logs a warning at
start. Run as root, the kernel does not enforce the process limit.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ...core.errors import ConfigurationError
from ...interface.capabilities import SandboxResult
from .execution import SAFE_PATH, checked_run, execute, languages
from .limits import Limits


class SubprocessSandbox:
    name = "subprocess"

    def __init__(self, limits: Limits, python: Path) -> None:
        prlimit = shutil.which("prlimit", path=SAFE_PATH)
        if prlimit is None:
            raise ConfigurationError("SKILLQ_SANDBOX=subprocess needs prlimit (util-linux)")
        self.limits = limits
        self.prlimit = prlimit
        self.languages = languages(python)

    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> SandboxResult:
        chosen, wall, inputs = checked_run(
            self.languages, self.limits, code, language, timeout, files
        )
        with tempfile.TemporaryDirectory(prefix="skillq-sandbox-") as work:
            script = Path(work) / f".skillq-{chosen.filename}"
            await asyncio.to_thread(_stage, Path(work), inputs, script, code)
            argv = [*self.limits.prlimit(self.prlimit), *chosen.program, str(script)]
            env = {"PATH": SAFE_PATH, "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
            return await execute(argv, limits=self.limits, timeout=wall, cwd=work, env=env)


def _stage(root: Path, inputs: Mapping[str, bytes], script: Path, code: str) -> None:
    for name, data in inputs.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    script.write_text(code, encoding="utf-8", errors="surrogatepass")

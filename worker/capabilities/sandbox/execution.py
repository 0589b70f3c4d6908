"""Running one sandboxed program: wall-clock timeout, output caps, cleanup.

Shared by the backends. The program starts in a session of its own, so the
timeout (or a cancel of the job) kills its whole process group; output beyond
the cap is read and dropped, so a chatty program neither blocks on a full pipe
nor fills the worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...core.errors import ConfigurationError, InvalidArtifactName
from ...interface.capabilities import SandboxResult
from ...store.artifacts import validate_name
from .limits import Limits

CHUNK = 64 * 1024
DRAIN_AFTER_EXIT = 2.0  # seconds to read what is left in the pipes after the program ends
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Language:
    """How to run code of one language: the program, and the name its code file gets."""

    program: list[str]
    filename: str


def python_interpreter(configured: str, *, for_others: bool = False) -> Path:
    """``SKILLQ_SANDBOX_PYTHON``, or the interpreter this worker runs on (not its
    virtualenv: the sandbox sees the base installation, not the project).

    ``for_others``: the sandbox runs as another user, who must be able to
    reach the interpreter; a base installation under a private home (pyenv
    under ``/root``) is passed over for the system's ``python3``.
    """
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigurationError(f"SKILLQ_SANDBOX_PYTHON={configured!r} is not a program")
        return Path(found).resolve()
    base = Path(getattr(sys, "_base_executable", None) or sys.executable).resolve()
    if not for_others or open_to_others(base):
        return base
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        path = Path(candidate).resolve()
        if path.is_file() and open_to_others(path):
            return path
    raise ConfigurationError(
        f"the sandbox user cannot reach this worker's Python ({base}) and there is no "
        "python3 under /usr: set SKILLQ_SANDBOX_PYTHON to an interpreter all users can run"
    )


def open_to_others(program: Path) -> bool:
    """Whether a user other than the owner can run ``program`` (every directory
    above it searchable by others, the file readable and executable)."""
    try:
        if program.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in program.parents)
    except OSError:
        return False


def languages(python: Path) -> dict[str, Language]:
    found = {"python": Language([str(python), "-I", "-B"], "main.py")}
    for name in ("bash", "sh"):
        program = shutil.which(name, path=SAFE_PATH)
        if program is not None:
            found[name] = Language([str(Path(program).resolve())], f"main.{name}")
    return found


def check_files(files: Mapping[str, bytes] | None, limit: int) -> dict[str, bytes]:
    """Input files: safe relative names, bytes, fitting the work directory."""
    checked: dict[str, bytes] = {}
    total = 0
    for name, data in (files or {}).items():
        try:
            validate_name(name)
        except InvalidArtifactName as exc:
            raise ValueError(f"sandbox input file {name[:80]!r}: {exc.reason}") from None
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"sandbox input file {name!r} must be bytes, not {type(data).__name__}")
        total += len(data)
        checked[name] = bytes(data)
    if total > limit:
        raise ValueError(f"sandbox input files are {total} bytes, over the {limit}-byte work area")
    return checked


def checked_run(
    known: Mapping[str, Language],
    limits: Limits,
    code: str,
    language: str,
    timeout: float | None,
    files: Mapping[str, bytes] | None,
) -> tuple[Language, float, dict[str, bytes]]:
    """A run's arguments, checked alike by every backend: its language, its
    wall-clock timeout and its input files."""
    chosen = known.get(language)
    if chosen is None:
        raise ValueError(f"the sandbox runs {sorted(known)}, not {language!r}")
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    return chosen, limits.timeout_for(timeout), check_files(files, limits.disk_bytes)


def spooled(data: bytes) -> IO[bytes]:
    """An unlinked temporary file holding ``data``, rewound, to hand over by descriptor."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    handle.write(data)
    handle.flush()
    handle.seek(0)
    return handle


@dataclass
class Capture:
    """One output stream, kept up to a cap."""

    cap: int
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(CHUNK):
            self.total += len(chunk)
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    @property
    def cut(self) -> bool:
        return self.total > len(self.kept)

    def text(self) -> str:
        shown = bytes(self.kept).decode("utf-8", errors="replace")
        if self.cut:
            shown += (
                f"\n[skillq: output cut: {self.total} bytes written, the first "
                f"{len(self.kept)} kept]\n"
            )
        return shown


def kill_group(process: asyncio.subprocess.Process) -> None:
    """Kill the program's process group, only while the program is unreaped:
    after that its pid (and group id) may belong to someone else."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


async def execute(
    argv: list[str],
    *,
    limits: Limits,
    timeout: float,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
    user: int | None = None,
) -> SandboxResult:
    """Run ``argv`` to its end or its timeout; what it printed, capped."""
    options: dict[str, Any] = {}
    if user is not None:
        options.update(user=user, group=user, extra_groups=[])
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env or {"PATH": SAFE_PATH}),
        pass_fds=pass_fds,
        start_new_session=True,
        **options,
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = Capture(limits.output_bytes), Capture(limits.output_bytes)
    readers = [
        asyncio.ensure_future(out.read(process.stdout)),
        asyncio.ensure_future(err.read(process.stderr)),
    ]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            timed_out = True
            kill_group(process)
            await process.wait()
        # Whatever is still in the pipes; a descendant that kept them open is gone
        # with the program's session (bwrap: its PID namespace).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*readers), DRAIN_AFTER_EXIT)
    except BaseException:
        kill_group(process)
        with contextlib.suppress(BaseException):
            await asyncio.shield(process.wait())
        raise
    finally:
        for reader in readers:
            reader.cancel()
        kill_group(process)
    code = process.returncode if process.returncode is not None else -signal.SIGKILL
    return SandboxResult(
        exit_code=code,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        duration=round(time.monotonic() - started, 6),
        truncated=out.cut or err.cut,
    )

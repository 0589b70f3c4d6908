"""The default sandbox: bubblewrap.

Each run gets fresh namespaces (user, PID, network, IPC, UTS, cgroup), so it
has no network (not even the worker's loopback), sees only its own
processes and dies with the worker; a read-only view of ``/usr`` (and the
Python installation) and nothing else of the host; a private, size-capped
tmpfs as its work directory (``/work``, with the input files; ``/tmp`` links
to it), the only place it can write; an empty environment; and the limits
of :class:`~.limits.Limits`, applied by ``prlimit`` inside the sandbox.

A worker running as root starts each run as an unprivileged user id of its
own (``200000`` and up): as root the kernel would not enforce the process
limit, and a fork bomb would reach the host's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from ...core.errors import ConfigurationError
from ...interface.capabilities import SandboxResult
from .execution import SAFE_PATH, Language, checked_run, execute, languages, spooled
from .limits import Limits

ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
UID_BASE = 200_000
UID_SPAN = 60_000
WORK = "/work"
TMP = "/tmp"  # noqa: S108 - inside the sandbox: a link to its work directory
CODE_DIR = "/.skillq"
PROBE_TIMEOUT = 20.0


class BwrapSandbox:
    """A :class:`~worker.interface.capabilities.SandboxClient` on bubblewrap."""

    name = "bwrap"

    def __init__(self, limits: Limits, python: Path, *, bwrap: str | None = None) -> None:
        found = bwrap or shutil.which("bwrap")
        prlimit = shutil.which("prlimit", path=SAFE_PATH)
        if found is None:
            raise ConfigurationError(
                "SKILLQ_SANDBOX=bwrap needs bubblewrap: install it (Debian/Ubuntu: apt-get "
                "install bubblewrap), or set SKILLQ_SANDBOX=none"
            )
        if prlimit is None:
            raise ConfigurationError("the bwrap sandbox needs prlimit (util-linux) under /usr")
        self.limits = limits
        self.bwrap = found
        self.prlimit = str(Path(prlimit).resolve())
        self.languages = languages(python)
        self._extra_roots = sorted(
            {str(root) for root in _install_roots(self.languages) if not _under(root, "/usr")}
        )

    def _user(self) -> int | None:
        """The user id a run starts as: its own when the worker is root."""
        if os.geteuid() != 0:
            return None
        return UID_BASE + secrets.randbelow(UID_SPAN)

    def _process_limit(self, user: int | None) -> int:
        # Run as the worker's own user, the count includes the worker's processes.
        if user is not None:
            return self.limits.processes
        return self.limits.processes + _processes_of(os.getuid())

    def argv(
        self, language: Language, code_fd: int, files: Mapping[str, int], user: int | None
    ) -> list[str]:
        disk = str(self.limits.disk_bytes)
        args = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in ROOT_LINKS:
            path = Path(link)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), link]
            elif path.is_dir():
                args += ["--ro-bind", link, link]
        for root in self._extra_roots:
            args += ["--ro-bind", root, root]
        args += ["--proc", "/proc", "--dev", "/dev"]
        # One writable place: /tmp is a link to the work directory, under one size cap.
        args += ["--size", disk, "--tmpfs", WORK, "--symlink", WORK, TMP]
        for name, fd in files.items():
            parent = str(Path(name).parent)
            if parent != ".":
                args += ["--dir", f"{WORK}/{parent}"]
            args += ["--file", str(fd), f"{WORK}/{name}"]
        args += ["--dir", CODE_DIR, "--file", str(code_fd), f"{CODE_DIR}/{language.filename}"]
        # /dev is a tmpfs of bwrap's with no size cap: read-only too (devices still work).
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORK, "--clearenv"]
        for key, value in {
            "PATH": SAFE_PATH,
            "HOME": WORK,
            "TMPDIR": WORK,
            "LANG": "C.UTF-8",
        }.items():
            args += ["--setenv", key, value]
        args += self.limits.prlimit(self.prlimit, self._process_limit(user))
        return [*args, *language.program, f"{CODE_DIR}/{language.filename}"]

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
        handles: list[IO[bytes]] = []
        try:
            code_file = spooled(code.encode("utf-8", "surrogatepass"))
            handles.append(code_file)
            fds: dict[str, int] = {}
            for name, data in inputs.items():
                handle = await asyncio.to_thread(spooled, data)  # up to the disk limit
                handles.append(handle)
                fds[name] = handle.fileno()
            user = self._user()
            argv = self.argv(chosen, code_file.fileno(), fds, user)
            return await execute(
                argv,
                limits=self.limits,
                timeout=wall,
                pass_fds=tuple(handle.fileno() for handle in handles),
                user=user,
            )
        finally:
            for handle in handles:
                with contextlib.suppress(OSError):
                    handle.close()

    def probe(self) -> None:
        """Run ``true`` in a sandbox as every run would be set up; raise if it fails."""
        user = self._user()
        with spooled(b"") as code:
            language = Language(
                [str(Path(shutil.which("true", path=SAFE_PATH) or "/bin/true"))], "probe"
            )
            argv = self.argv(language, code.fileno(), {}, user)
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=PROBE_TIMEOUT,
                    env={"PATH": SAFE_PATH},
                    pass_fds=(code.fileno(),),
                    check=False,
                    user=user,
                    group=user,
                    extra_groups=None if user is None else [],
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigurationError(f"the bwrap sandbox cannot start: {exc}") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()[-500:]
            raise ConfigurationError(
                f"the bwrap sandbox does not work on this host (exit {done.returncode}: "
                f"{detail or 'no message'}); unprivileged user namespaces may be disabled "
                "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)"
            )


def _under(path: Path, root: str) -> bool:
    return path == Path(root) or Path(root) in path.parents


def _install_roots(found: Mapping[str, Language]) -> list[Path]:
    """The installation prefix of each interpreter (``<prefix>/bin/python``)."""
    roots = []
    for language in found.values():
        program = Path(language.program[0])
        roots.append(program.parent.parent if program.parent.name == "bin" else program.parent)
    return roots


def _processes_of(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count

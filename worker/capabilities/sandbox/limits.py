"""The resource limits every sandboxed run gets, from the settings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...core.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0  # wall-clock seconds when a run names none
    max_timeout: float = 600.0  # the most a run may ask for
    memory_bytes: int = 512 * MIB  # address space per process (RLIMIT_AS)
    cpu_seconds: int = 600  # CPU time per process (RLIMIT_CPU)
    disk_bytes: int = 64 * MIB  # the work directory's and /tmp's size each
    file_size_bytes: int = 16 * MIB  # largest file a process may write (RLIMIT_FSIZE)
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 64  # processes of the sandbox's user (RLIMIT_NPROC)
    output_bytes: int = MIB  # kept of stdout and of stderr each

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            timeout=settings.sandbox_timeout,
            max_timeout=max(settings.sandbox_max_timeout, settings.sandbox_timeout),
            memory_bytes=settings.sandbox_memory_mb * MIB,
            cpu_seconds=settings.sandbox_cpu_seconds,
            disk_bytes=settings.sandbox_disk_mb * MIB,
            file_size_bytes=settings.sandbox_file_size_mb * MIB,
            open_files=settings.sandbox_open_files,
            processes=settings.sandbox_processes,
            output_bytes=settings.sandbox_output_bytes,
        )

    def timeout_for(self, asked: float | None) -> float:
        if asked is None:
            return self.timeout
        if not (isinstance(asked, int | float) and math.isfinite(asked) and asked > 0):
            raise ValueError(f"a sandbox timeout must be a positive number of seconds: {asked!r}")
        if asked > self.max_timeout:
            raise ValueError(
                f"a sandbox timeout of {asked:g} s is over SKILLQ_SANDBOX_MAX_TIMEOUT="
                f"{self.max_timeout:g} s"
            )
        return float(asked)

    def prlimit(self, prlimit: str, processes: int | None = None) -> list[str]:
        """``prlimit`` arguments applying the limits to the command after them.

        CPU time gets a soft limit one second under the hard one, so a runaway
        gets ``SIGXCPU`` (and a message) before ``SIGKILL``.
        """
        cpu = max(2, self.cpu_seconds)
        return [
            prlimit,
            f"--as={self.memory_bytes}",
            f"--cpu={cpu - 1}:{cpu}",
            f"--fsize={self.file_size_bytes}",
            f"--nofile={self.open_files}",
            f"--nproc={self.processes if processes is None else processes}",
            "--core=0",
            "--",
        ]

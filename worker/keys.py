"""Redis key and channel names, in one place so every process agrees."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Names under one configurable prefix (DESIGN: "Redis keys and channels")."""

    prefix: str = "skillq"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}:events:{job_id}"

    def stream(self, job_id: str) -> str:
        return f"{self.prefix}:stream:{job_id}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}:cancel:{job_id}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}:cancel"

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}:worker:{hostname}"

    @property
    def worker_pattern(self) -> str:
        return f"{self.prefix}:worker:*"

"""What a job reports to while it runs: metrics and traces (both off unless
configured), handed to the runner and the job's context together, so each
place that does work (a run, an artifact write, a sandbox run) reports it in
one line instead of knowing about Prometheus or OpenTelemetry."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..core.tracing import Tracing
from ..interface.capabilities import SandboxClient, SandboxResult
from .metrics import Metrics


@dataclass(frozen=True)
class Observed:
    metrics: Metrics = field(default_factory=Metrics)
    tracing: Tracing = field(default_factory=lambda: Tracing(""))

    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        kind: str = "INTERNAL",
        carrier: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Any]:
        return self.tracing.span(name, attributes, kind=kind, carrier=carrier)


class TracedSandbox:
    """A sandbox client whose runs are spans of the job's trace."""

    def __init__(self, inner: SandboxClient, observed: Observed) -> None:
        self._inner = inner
        self._observed = observed

    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> SandboxResult:
        with self._observed.span("skillq.sandbox", {"skillq.sandbox.language": language}) as span:
            result = await self._inner.run(code, language=language, timeout=timeout, files=files)
            if span is not None:
                span.set_attribute("skillq.sandbox.exit_code", result.exit_code)
                span.set_attribute("skillq.sandbox.timed_out", result.timed_out)
            return result

"""Traces with OpenTelemetry: a span for each submit and each job run, child spans
for artifact writes and sandbox runs, and the W3C trace context carried in the
job's Celery message (header ``traceparent``), so a trace goes on across
workers and through ``ctx.call`` children.

``SKILLQ_TRACING`` chooses the tracer provider:

* empty (the default): no spans at all, not even no-op ones, and nothing
  added to messages; the per-job cost is one attribute check.
* ``otlp``: the OpenTelemetry SDK (``pip install 'skillq[otel]'``) with its
  OTLP/HTTP exporter, both configured by the standard ``OTEL_*`` variables
  (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...), which the SDK
  reads itself.
* ``global``: whatever provider the process already has (e.g. set up by
  ``opentelemetry-instrument``).
* ``module:factory``: a callable returning a ``TracerProvider`` (a test's
  in-memory exporter, a custom pipeline).

Each process builds its provider on first use, so a prefork child never
inherits its parent's exporter threads.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .errors import ConfigurationError
from .settings import Settings

TRACER_NAME = "skillq"
HEADER = "traceparent"
STATE_HEADER = "tracestate"


# One provider per process and choice, however many clients and jobs trace:
# a provider owns exporter threads, which must not multiply or cross a fork.
_providers: dict[tuple[int, str], Any] = {}
_providers_lock = threading.Lock()


class Tracing:
    """A tracer for one ``SKILLQ_TRACING`` choice."""

    def __init__(self, choice: str) -> None:
        self.choice = choice.strip()
        self.enabled = bool(self.choice)

    def tracer(self) -> Any:
        key = (os.getpid(), self.choice)
        provider = _providers.get(key)
        if provider is None:
            with _providers_lock:
                provider = _providers.get(key)
                if provider is None:
                    provider = _providers[key] = provider_for(self.choice)
        return provider.get_tracer(TRACER_NAME)

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        kind: str = "INTERNAL",
        carrier: Mapping[str, str] | None = None,
    ) -> Iterator[Any]:
        """A span (the current one inside), or None when tracing is off.
        ``carrier``: message headers holding the parent's trace context."""
        if not self.enabled:
            yield None
            return
        from opentelemetry import propagate, trace

        context = propagate.extract(dict(carrier)) if carrier else None
        with self.tracer().start_as_current_span(
            name,
            context=context,
            kind=getattr(trace.SpanKind, kind),
            attributes=dict(attributes or {}),
        ) as current:
            yield current

    def headers(self) -> dict[str, str]:
        """The current trace context as message headers ({} when off or outside a span)."""
        if not self.enabled:
            return {}
        from opentelemetry import propagate

        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return {key: value for key, value in carrier.items() if key in (HEADER, STATE_HEADER)}


def provider_for(choice: str) -> Any:
    from opentelemetry import trace

    if choice == "global":
        return trace.get_tracer_provider()
    if choice == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigurationError(
                "SKILLQ_TRACING=otlp needs the OpenTelemetry SDK: pip install 'skillq[otel]'"
            ) from exc
        provider = TracerProvider(resource=Resource.create())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return provider
    module_name, _, attribute = choice.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"SKILLQ_TRACING={choice!r}: use otlp, global or module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"SKILLQ_TRACING={choice!r}: cannot load it: {exc}") from exc
    return factory()


def tracing_for(settings: Settings) -> Tracing:
    return Tracing(settings.tracing)

"""``worker.transport:Transport``: the path existing broker settings name; the
transport lives in :mod:`worker.runtime.transport`."""

from .runtime.transport import OVERRIDDEN_KOMBU_SOURCES, Transport

__all__ = ["OVERRIDDEN_KOMBU_SOURCES", "Transport"]

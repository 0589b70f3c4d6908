"""The message a skillq channel hands Celery's consumer: its body decoded once.

:func:`worker.wire.envelope.inspect` decodes every task body to check it
before Celery sees it, with kombu's own JSON decoder; Celery's consumer then
read ``message.payload``, which decoded the same bytes again, in the worker's
main process, for every job. The channel keeps the body it checked beside the
envelope it delivers, and the message it builds for that envelope starts with
it as its decoded payload. Content type and encoding need no second look:
``inspect`` refuses anything but utf-8 JSON.
"""

from __future__ import annotations

from typing import Any

from kombu.transport.virtual.base import Message as VirtualMessage

CHECKED = "_skillq_checked_body"


def remember(channel: Any, envelope: dict[str, Any], body: Any) -> None:
    """The body ``inspect`` decoded for ``envelope``, for the message built next."""
    if body is not None:
        channel.__dict__[CHECKED] = (envelope, body)


class CheckedMessage(VirtualMessage):
    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        super().__init__(payload, channel=channel, **kwargs)
        checked = channel.__dict__.pop(CHECKED, None) if channel is not None else None
        if checked is not None and checked[0] is payload:
            self._decoded_cache = checked[1]

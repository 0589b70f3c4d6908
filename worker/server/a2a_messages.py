"""What an A2A message says to skillq: the skill it names and the job's args."""

from __future__ import annotations

from typing import Any

from a2a.types.a2a_pb2 import Message, SendMessageRequest
from a2a.utils import errors as a2a_errors

from .a2a_convert import plain


def meta_of(params: SendMessageRequest, key: str) -> str | None:
    """A string in the message's metadata, or the request's (``skill``, ``grant``)."""
    for holder in (params.message.metadata, params.metadata):
        value = plain(holder).get(key) if holder.fields else None
        if isinstance(value, str) and value:
            return value
    return None


def args_of(message: Message) -> dict[str, Any]:
    """The args: the message's data part (an object), or its text as ``{"text": ...}``."""
    texts = []
    for part in message.parts:
        if part.HasField("data"):
            value = plain(part.data)
            if not isinstance(value, dict):
                raise a2a_errors.InvalidParamsError(message="the data part must be a JSON object")
            return value
        if part.HasField("text"):
            texts.append(part.text)
    return {"text": "\n".join(texts)} if texts else {}

"""Checking a queue item before Celery's consumer sees it.

Celery's consumer unpacks each message in the worker's main process: the
envelope, task protocol 2 headers (``id``, ``task``, ``timelimit``, ``eta``,
``expires``…) and the body ``[args, kwargs, embed]``; prefork then pickles
the body to hand it to a child. An item that is well-formed JSON but of the
wrong shape raises there and stops the worker, and the item comes back on
the next start. :func:`inspect` accepts only what Celery can unpack, so
anything else is dead-lettered instead. It never raises: any exception while
looking at an item is itself a reason to refuse it.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kombu.utils import json as kombu_json
from kombu.utils.encoding import bytes_to_str

ACCEPTED_CONTENT_TYPE = "application/json"
ACCEPTED_ENCODINGS = frozenset({"utf-8", "utf8"})
MAX_ID_LENGTH = 255
OPTIONAL_TEXT_HEADERS = ("shadow", "root_id", "parent_id", "group", "lang", "origin")
REPR_HEADERS = ("argsrepr", "kwargsrepr")
CANVAS_KEYS = ("callbacks", "errbacks", "chain")


class Refused(Exception):
    """Why an item cannot be handed to Celery."""


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found: the envelope to deliver, or why not.

    ``job_id`` and ``task`` are filled in whenever the item names them
    readably, also for refused items, so the job can be failed.
    """

    message: dict[str, Any] | None
    reason: str = ""
    job_id: str = ""
    task: str = ""
    # The task body as Celery's consumer would decode it (kombu's JSON), so the
    # consumer need not decode it again: None for control messages.
    body: Any = None


def nesting_depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers deep (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def inspect(item: bytes | str, max_depth: int, *, task: bool = True) -> Inspection:
    """Check an item popped off a queue list; never raises.

    ``task=False`` for Celery's remote-control reply queues (``*.pidbox``),
    whose messages are JSON envelopes but not task messages.
    """
    job_id = task_name = ""
    try:
        try:
            envelope = json.loads(bytes_to_str(item))
        except ValueError as exc:  # UnicodeDecodeError included
            raise Refused(f"not JSON: {exc}") from exc
        if not isinstance(envelope, dict):
            raise Refused(f"envelope is a JSON {type(envelope).__name__}, not an object")
        headers = envelope.get("headers")
        if isinstance(headers, dict):
            raw_id, raw_task = headers.get("id"), headers.get("task")
            job_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LENGTH else ""
            task_name = raw_task if isinstance(raw_task, str) else ""
        _check_envelope(envelope)
        body = None
        if task:
            _check_headers(headers)
            body = _check_body(envelope, max_depth)
        else:
            _check_plain_body(envelope)
        return Inspection(envelope, job_id=job_id, task=task_name, body=body)
    except Refused as refused:
        return Inspection(None, str(refused), job_id, task_name)
    except RecursionError:
        return Inspection(None, "item nests too deeply to decode", job_id, task_name)
    except Exception as exc:  # anything unexpected is a refusal, never a crash
        reason = f"unreadable item: {type(exc).__name__}: {exc}"
        return Inspection(None, reason, job_id, task_name)


def _check_envelope(envelope: dict[str, Any]) -> None:
    properties = envelope.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise Refused("envelope has no properties.delivery_tag")
    if not isinstance(properties["delivery_tag"], str):
        raise Refused("properties.delivery_tag is not a string")
    info = properties.get("delivery_info", {})
    if not isinstance(info, dict):
        raise Refused("properties.delivery_info is not an object")
    for key in ("exchange", "routing_key"):
        if not isinstance(info.get(key, ""), str):
            raise Refused(f"properties.delivery_info.{key} is not a string")
    priority = properties.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise Refused("properties.priority is not an integer")
    for key in ("correlation_id", "reply_to"):
        if not isinstance(properties.get(key) or "", str):
            raise Refused(f"properties.{key} is not a string")
    if properties.get("body_encoding", "base64") not in ("base64", None):
        raise Refused(f"body encoding {properties.get('body_encoding')!r} is not supported")
    content_type = envelope.get("content-type")
    if content_type != ACCEPTED_CONTENT_TYPE:
        raise Refused(f"content type {content_type!r} refused: skillq accepts JSON only")
    encoding = envelope.get("content-encoding")
    if encoding is not None and (
        not isinstance(encoding, str) or encoding.lower() not in ACCEPTED_ENCODINGS
    ):
        raise Refused(f"content encoding {encoding!r} refused: JSON messages are utf-8")


def _check_headers(headers: Any) -> None:
    if not isinstance(headers, dict):
        raise Refused("headers is not an object (task protocol 2 is required)")
    job_id, task = headers.get("id"), headers.get("task")
    if not isinstance(task, str) or not task:
        raise Refused("headers.task is missing or not a string (task protocol 2 is required)")
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
        raise Refused(f"headers.id must be a string of 1-{MAX_ID_LENGTH} characters")
    for key in OPTIONAL_TEXT_HEADERS:
        if not isinstance(headers.get(key) or "", str):
            raise Refused(f"headers.{key} is not a string")
    for key in REPR_HEADERS:
        if not isinstance(headers.get(key) or "", str):
            raise Refused(f"headers.{key} is not a string")
    retries = headers.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise Refused("headers.retries is not a non-negative integer")
    if not isinstance(headers.get("ignore_result", False), bool | None):
        raise Refused("headers.ignore_result is not a boolean")
    limits = headers.get("timelimit")
    if limits is not None:
        if not isinstance(limits, list) or len(limits) != 2:
            raise Refused("headers.timelimit must be [soft, hard]")
        for limit in limits:
            if limit is not None and not _is_seconds(limit):
                raise Refused(f"headers.timelimit has {limit!r}, not a number of seconds")
    for key in ("eta", "expires"):
        value = headers.get(key)
        if value is not None:
            _check_time(key, value)


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _check_time(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise Refused(f"headers.{key} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
        moment.timestamp()  # out-of-range dates fail here, not in the consumer
    except (ValueError, OverflowError, OSError) as exc:
        raise Refused(f"headers.{key} {value[:64]!r} is not a usable time: {exc}") from exc


def _decoded_body(envelope: dict[str, Any]) -> Any:
    body = envelope.get("body")
    if not isinstance(body, str):
        raise Refused("body is not a string")
    try:
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True).decode("utf-8")
        # kombu's decoder, as Celery's consumer uses: the same values, and a
        # marker it cannot turn into one (a bad ``__type__``) is refused here.
        return kombu_json.loads(body)
    except RecursionError:
        raise Refused("body nests too deeply to decode") from None
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError included
        raise Refused(f"body is not JSON: {exc}") from exc


def _check_plain_body(envelope: dict[str, Any]) -> None:
    if not isinstance(_decoded_body(envelope), dict):
        raise Refused("control reply body is not an object")


def _check_body(envelope: dict[str, Any], max_depth: int) -> list[Any]:
    decoded = _decoded_body(envelope)
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise Refused("body must be [args, kwargs, embed] (task protocol 2)")
    args, kwargs, embed = decoded
    if not isinstance(args, list):
        raise Refused("body args is not a list")
    if not isinstance(kwargs, dict):
        raise Refused("body kwargs is not an object")
    if not isinstance(embed, dict):
        raise Refused("body embed is not an object")
    for key in CANVAS_KEYS:
        linked = embed.get(key)
        if linked is not None and not (
            isinstance(linked, list) and all(isinstance(item, dict) for item in linked)
        ):
            raise Refused(f"body embed.{key} is not a list of signatures")
    if embed.get("chord") is not None and not isinstance(embed["chord"], dict):
        raise Refused("body embed.chord is not a signature")
    # [args, kwargs, embed] adds one level above what the producer sent.
    if nesting_depth_over(decoded, max_depth + 2):
        raise Refused(f"body nests deeper than {max_depth} levels (SKILLQ_MAX_ARGS_DEPTH)")
    return decoded

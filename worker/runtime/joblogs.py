"""A job's own log lines: what its handler logs through :mod:`logging` becomes
``log`` events of that job, and the worker's own lines say which job they are about.

Which job a record belongs to comes from a context variable set when the
handler's task is created. asyncio copies the context into every task and
``asyncio.to_thread`` call the handler starts, so two jobs sharing one event
loop (the threads pool) never get each other's lines; a thread the handler
starts itself with :mod:`threading` is not part of the job, and its lines go
only to the worker's log.

A job keeps at most ``SKILLQ_JOB_LOG_LINES`` lines of at most
:data:`LINE_BYTES` each (one closing line says when more were dropped);
every line passes through the job's secret redaction before it is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..core.secrets import RedactingStream
from ..store.events import EventWriter, dumps, envelope_tail

LINE_BYTES = 8192
LOG_KIND = '"log"'
# Loggers of the machinery around the handler: they go to the worker's log
# (with the job id attached), not into the job's own lines.
INFRASTRUCTURE = (
    "worker",
    "celery",
    "kombu",
    "amqp",
    "redis",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "asyncio",
)


@dataclass
class JobLog:
    """Where one job's log lines go."""

    job_id: str
    skill: str
    writer: EventWriter
    loop: asyncio.AbstractEventLoop
    redact: Callable[[str], str]
    max_lines: int
    lines: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: logging.LogRecord) -> None:
        with self.lock:
            self.lines += 1
            number = self.lines
        if number > self.max_lines + 1:
            return
        if number == self.max_lines + 1:
            message = f"[skillq: more log lines dropped; a job keeps {self.max_lines}]"
            level, name = "WARNING", "skillq"
        else:
            message = self.redact(self._text(record))
            level, name = record.levelname, record.name
        encoded = dumps({"level": level, "logger": name, "message": message})
        event = (envelope_tail(repr(time.time()), LOG_KIND, encoded), "")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.writer.push(event)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.writer.push, event)

    @staticmethod
    def _text(record: logging.LogRecord) -> str:
        try:
            text = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the line
            text = f"{record.msg!r} (unformattable: {exc})"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        encoded = text.encode()
        if len(encoded) > LINE_BYTES:
            text = encoded[: LINE_BYTES - 3].decode(errors="ignore") + "..."
        return text


CURRENT: ContextVar[JobLog | None] = ContextVar("skillq_job_log", default=None)


def infrastructure(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in INFRASTRUCTURE)


class JobLogHandler(logging.Handler):
    """On the root logger of a worker process: hands each record to its job."""

    def emit(self, record: logging.LogRecord) -> None:
        job = CURRENT.get()
        if job is None or infrastructure(record.name):
            return
        try:
            job.add(record)
        except Exception:  # logging must never fail the job
            self.handleError(record)


_install_lock = threading.Lock()


def install_capture(log_format: str = "text") -> None:
    """Add the handler to the root logger once per process, and turn what a
    handler prints into log records (see :class:`PrintedLines`)."""
    root = logging.getLogger()
    with _install_lock:
        if not any(isinstance(handler, JobLogHandler) for handler in root.handlers):
            root.addHandler(JobLogHandler())
        printed = PrintedLines(json_logs=log_format == "json")
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            if isinstance(stream, RedactingStream):
                stream.on_line = printed


class PrintedLines:
    """What a handler prints, as log records of its job.

    A handler's ``print()`` would otherwise go to the worker's log as raw
    text: absent from the job's own lines (``skillq logs``), and, with JSON
    logs, able to forge a record (print a JSON object) or put escape bytes in
    the log. Inside a job each printed line becomes a record of the logger
    ``stdout`` (INFO) or ``stderr`` (WARNING): a ``log`` event of the job and
    a properly encoded line of the worker log. Outside a job only JSON logs
    need it; text logs keep the line as printed.
    """

    LEVELS = {"stdout": logging.INFO, "stderr": logging.WARNING}

    def __init__(self, *, json_logs: bool) -> None:
        self.json_logs = json_logs
        self._inside = threading.local()
        for name, level in self.LEVELS.items():
            # Printed lines are kept whatever level the worker logs at, as before.
            logging.getLogger(name).setLevel(level)

    def __call__(self, stream: str, text: str) -> bool:
        if getattr(self._inside, "active", False):
            return False  # a logging handler writing to this stream: let it through
        if CURRENT.get() is None and not self.json_logs:
            return False
        self._inside.active = True
        try:
            logger = logging.getLogger(stream)
            for line in text.rstrip("\n").split("\n"):
                logger.log(self.LEVELS.get(stream, logging.INFO), "%s", line)
        finally:
            self._inside.active = False
        return True


class JobFilter(logging.Filter):
    """Gives every record ``job_id`` and ``skill`` (``-`` outside a job), for the
    worker's own log format (``%(job_id)s``) and its JSON lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = CURRENT.get()
        record.job_id = job.job_id if job is not None else "-"
        record.skill = job.skill if job is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``SKILLQ_LOG_FORMAT=json``), for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", "-"),
            "skill": getattr(record, "skill", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def shape_worker_logs(fmt: str) -> None:
    """Attach the job filter to the root logger's handlers; with ``json``, also
    the JSON formatter."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JobLogHandler):
            continue
        if not any(isinstance(item, JobFilter) for item in handler.filters):
            handler.addFilter(JobFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter())

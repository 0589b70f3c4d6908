"""Secrets injected into skills, and scrubbing them from what leaves a job.

A secret ``NAME`` comes from the environment variable ``SKILLQ_SECRET_NAME``
(upper-cased, ``-`` and ``.`` as ``_``) or from the file
``<SKILLQ_SECRETS_DIR>/NAME`` (the ``/run/secrets`` convention). Files are
read on demand, so a rotated file is picked up without a restart. A worker
takes the ``SKILLQ_SECRET_*`` variables out of its environment when it starts
(:func:`take_from_environment`), so skills and the processes they start do
not inherit them.

What this guards against is mistakes in trusted skill code (a secret in an
event, a result, an error, a log line, a print): code running in the worker
can always read what the worker can. Untrusted code belongs in the sandbox.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from .errors import SecretNotFound

SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
ENV_PREFIX = "SKILLQ_SECRET_"
REDACTED = "***"
MIN_REDACTED_LENGTH = 4


AUTH_KEY_VARIABLE = "SKILLQ_AUTH_KEY"
# Keys read into Settings and never needed in the environment again.
KEY_VARIABLES = (AUTH_KEY_VARIABLE, "SKILLQ_GRANT_KEY", "SKILLQ_GRANT_PRIVATE_KEY")


def env_name(name: str) -> str:
    return ENV_PREFIX + re.sub(r"[-.]", "_", name).upper()


def take_from_environment(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Remove every ``SKILLQ_SECRET_*`` and the signing and grant keys from ``environ``.

    Returns the secrets, for the worker's :class:`SecretSource`; the keys
    were already read into :class:`~worker.core.settings.Settings`.
    """
    taken = {key: value for key, value in environ.items() if key.startswith(ENV_PREFIX)}
    for key in [*taken, *KEY_VARIABLES]:
        environ.pop(key, None)
    return taken


class SecretSource:
    def __init__(self, environ: Mapping[str, str] | None = None, directory: Path | None = None):
        self._environ = environ if environ is not None else os.environ
        self._directory = directory

    def lookup(self, name: str) -> str | None:
        if not SECRET_NAME.match(name):
            return None
        value = self._environ.get(env_name(name))
        if value is not None:
            return value
        if self._directory is not None:
            path = self._directory / name
            try:
                return path.read_text().rstrip("\r\n")
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                return None
        return None


class LogRedactor(logging.Filter):
    """Scrubs every secret a job in this process has read from log records.

    Installed on the root logger's handlers of a worker process, so it also
    covers what handlers log themselves and tracebacks Celery prints.
    """

    def __init__(self) -> None:
        super().__init__()
        self._values: list[str] = []
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < MIN_REDACTED_LENGTH or value in self._values:
            return
        with self._lock:
            self._values = sorted({*self._values, value}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(message), None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        return True

    def install(self) -> None:
        for handler in logging.getLogger().handlers:
            if self not in handler.filters:
                handler.addFilter(self)


class SecretScope:
    """The secrets one job may read, and the values it has read so far.

    Values shorter than ``MIN_REDACTED_LENGTH`` are not scrubbed: replacing
    every "1" in a result would corrupt it while protecting nothing.
    """

    def __init__(
        self,
        source: SecretSource,
        skill: str,
        declared: tuple[str, ...],
        logs: LogRedactor | None = None,
    ) -> None:
        self._source = source
        self._logs = logs
        self._skill = skill
        self._declared = frozenset(declared)
        self._seen: list[str] = []

    def get(self, name: str) -> str:
        if name not in self._declared:
            raise SecretNotFound(
                name, f"is not declared by skill {self._skill!r} (add it to secrets=[...])"
            )
        value = self._source.lookup(name)
        if value is None:
            raise SecretNotFound(
                name,
                f"is not configured: set {env_name(name)} or put a file named {name} "
                "in SKILLQ_SECRETS_DIR",
            )
        if self._logs is not None:
            self._logs.add(value)
        if len(value) >= MIN_REDACTED_LENGTH and value not in self._seen:
            # Also the JSON-escaped form, since events and results are scrubbed
            # after encoding.
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]
            self._seen.extend({value, escaped})
            self._seen.sort(key=len, reverse=True)
        return value

    def redact(self, text: str) -> str:
        for value in self._seen:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def partial_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins a secret read so far.

        Streamed text is held back that far, so a secret split across two
        chunks is redacted once the next chunk arrives.
        """
        longest = 0
        for value in self._seen:
            for length in range(min(len(value) - 1, len(text)), longest, -1):
                if text.endswith(value[:length]):
                    longest = length
                    break
        return longest


class RedactingStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a worker process, scrubbed line by line.

    A handler's ``print`` would otherwise reach the worker log as it is.
    Text is written out at each newline (or flush), with every secret the
    process's jobs have read replaced.
    """

    def __init__(self, target: Any, redactor: LogRedactor, name: str = "stdout") -> None:
        super().__init__()
        self._target = target
        self._redactor = redactor
        self._pending = ""
        self.stream_name = name
        # Set by the worker runtime: takes a scrubbed line (True: it became a log record).
        self.on_line: Callable[[str, str], bool] | None = None
        # Reentrant: a line handed to logging may come back here from a handler.
        self._lock = threading.RLock()

    @property
    def target(self) -> Any:
        return self._target

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self._emit(complete + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._emit(self._pending)
                self._pending = ""
        self._target.flush()

    def _emit(self, text: str) -> None:
        scrubbed = self._redactor.scrub(text)
        if self.on_line is not None and self.on_line(self.stream_name, scrubbed):
            return
        self._target.write(scrubbed)

    def fileno(self) -> int:
        return int(self._target.fileno())

    def isatty(self) -> bool:
        return bool(self._target.isatty())

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._target, "encoding", "utf-8"))


def redact_standard_streams(redactor: LogRedactor) -> None:
    """Route this process's ``print`` and stderr through ``redactor`` (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, redactor, name))

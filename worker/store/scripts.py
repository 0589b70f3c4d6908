"""Lua scripts that make each step of a job one Redis round trip.

The scripts live in ``lua/*.lua`` (each file's header documents its KEYS,
ARGV and reply; :mod:`worker.store.scriptfiles` reads them); this module
names the ones of a job's life.

Every script shares ``emit``: it allocates the event's ``seq`` from the job
record (so any process can write a job's events without gaps), appends the
envelope to the replay stream with stream id ``0-<seq>`` (so a reader can
resume after any seq with XRANGE) and publishes it. The envelope is built by
concatenating pieces the caller already JSON-encoded.

Common KEYS: 1 job record, 2 stream, 3 pub/sub channel.
Common ARGV: 1 stream maxlen, 2 stream ttl, 3 record ttl, 4 envelope head
(``{"job_id":"<id>","seq":``), 5 now (Unix seconds).
"""

from __future__ import annotations

from .scriptfiles import load

START = load("start")
EMIT = load("emit")
FINISH = load("finish")
CELERY_META = load("celery_meta")
SUBMIT = load("submit")
CANCEL = load("cancel")
UNSUBMIT = load("unsubmit")
RETRY = load("retry")
RECEIVED = load("received")
RECORD = load("record")
SUSPEND = load("suspend")

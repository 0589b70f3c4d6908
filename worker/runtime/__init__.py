"""The worker runtime: the Celery app a worker runs, the per-process event
loop, the runner that takes a message to a finished job record, supervision of
lost and timed-out jobs, the Redis transport, and the ``CeleryRunContext``.

Only worker processes import this package; the client never does.
"""

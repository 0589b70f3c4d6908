"""Shared pieces every side of skillq uses: settings, Redis keys and scripts,
job records, the event and artifact formats, the error table, signing, and the
interfaces skill code is written against.

Nothing here imports the worker runtime, the client or the server, so a process
that only submits jobs loads no more than this and a sending Celery app.
"""

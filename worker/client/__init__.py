"""The client side: submit, poll, stream, cancel and read artifacts.

It depends only on :mod:`worker.core` and a Celery app configured for sending,
never on the worker runtime, so a web application that enqueues jobs loads no
runner, supervision or transport code.
"""

from .sync import AsyncSkillClient, SkillClient

__all__ = ["AsyncSkillClient", "SkillClient"]

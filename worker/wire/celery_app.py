"""A Celery app configured for skillq, without the worker runtime.

Producers (the client, the CLI, an HTTP front end) need Celery configured to
send skillq jobs (JSON only, queues, routes, the transport and its options)
but none of what runs them. :mod:`worker.app` builds the worker's app on top
of this one.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue
from pydantic import SecretStr

from ..core.settings import Settings
from ..interface.skills import SkillSet
from ..store import sentinels

DEFAULT_QUEUE = "default"
TRANSPORT = "worker.runtime.transport:Transport"
SENTINEL_TRANSPORT = "worker.runtime.sentinel_transport:SentinelTransport"
# broker_transport_options[OPTIONS_KEY] is what skillq's transport is told.
OPTIONS_KEY = "skillq"
# Job priorities, 9 the most urgent (AMQP's order; a message without one is 0).
# kombu's Redis transport keeps one list per priority and its own worker reads
# 0 first; skillq's transport reads 9 first, so a priority means the same from
# skillq's client and from any Celery producer.
PRIORITIES = range(10)
SECRET_PASSWORDS = ("redis_password", "sentinel_password")


def skillq_transport_options(settings: Settings, task_names: list[str]) -> dict[str, Any]:
    """What the transport needs, as plain values (no secrets)."""
    dumped = settings.model_dump(mode="json", exclude={"auth_key"})
    # The transport's own clients reach Redis with these (as its URLs carry a
    # password in their text); the signing key stays out.
    for name in SECRET_PASSWORDS:
        dumped[name] = Settings.secret_value(getattr(settings, name))
    return {
        "settings": dumped,
        "tasks": sorted(task_names),
    }


def transport_settings(given: dict[str, Any]) -> Settings:
    """The settings :func:`skillq_transport_options` passed, back as Settings."""
    values = dict(given.get("settings", {}))
    for name in SECRET_PASSWORDS:
        values[name] = SecretStr(values[name]) if values.get(name) else None
    # model_construct: the values were validated by the app that passed them,
    # and constructing Settings normally would read the environment again.
    return Settings.model_construct(**values)


def configured_app(
    settings: Settings, skills: SkillSet | None = None, *, consuming: bool = False
) -> Celery:
    """Celery with skillq's settings; ``skills`` adds their queues and routes.

    ``consuming``: the app takes jobs off queues (a worker), so it uses
    skillq's transport, which guards consumption; publishing is the same
    with kombu's own Redis transport, so producers do not load it.
    """
    skills = skills if skills is not None else SkillSet()
    app = Celery(
        "skillq",
        broker=sentinels.celery_url(settings, settings.broker_url),
        backend=sentinels.celery_url(settings, settings.effective_result_backend),
        # Celery's default Django fixup imports celery.worker into every producer.
        fixups=None if consuming else [],
    )
    transport_options = {
        # Deliveries are leased (worker.runtime.leases): the worker renews what
        # it holds, and kombu's visibility timeout is the lease.
        "visibility_timeout": settings.lease,
        # The sweep for lapsed leases runs every interval x throttle seconds.
        "unacked_restore_interval": max(1, min(10, int(settings.lease // 10))),
        "unacked_restore_throttle": 1,
    }
    # One Redis list per priority (kombu's default keeps four steps, so 1 and
    # 2 would rank as 0); skillq's transport reads 9 first (see PRIORITIES).
    broker_options = {**transport_options, "priority_steps": list(PRIORITIES)}
    if sentinels.is_sentinel(settings.broker_url):
        broker_options.update(sentinels.celery_options(settings))
    backend_options = dict(transport_options)
    if sentinels.is_sentinel(settings.effective_result_backend):
        backend_options.update(sentinels.celery_options(settings))
    queues = sorted({DEFAULT_QUEUE, *skills.queues})
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_track_started=False,
        result_expires=settings.result_expires,
        broker_transport_options={
            **broker_options,
            OPTIONS_KEY: skillq_transport_options(
                settings, [skills[name].task_name for name in skills]
            ),
        },
        result_backend_transport_options=backend_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(name) for name in queues],
        task_routes={skills[name].task_name: {"queue": skills[name].queue} for name in skills},
        worker_hijack_root_logger=True,
        # With REMAP_SIGTERM=SIGQUIT (Kubernetes), SIGTERM gives running jobs
        # this long to finish, then requeues the rest at once.
        worker_soft_shutdown_timeout=settings.soft_shutdown_timeout,
        worker_enable_soft_shutdown_on_idle=settings.soft_shutdown_timeout > 0,
        worker_redirect_stdouts=False,
    )
    if consuming and settings.broker_url.startswith(("redis://", "rediss://")):
        # A dotted path: kombu imports the transport in the process that consumes.
        app.conf.broker_transport = TRANSPORT
    elif consuming and sentinels.is_sentinel(settings.broker_url):
        app.conf.broker_transport = SENTINEL_TRANSPORT
    app.conf.skillq_settings = settings
    app.conf.skillq_skills = skills
    return app

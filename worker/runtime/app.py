"""The Celery app: ``celery -A worker.app worker`` and ``skillq worker`` load it.

:func:`create_app` builds an app from :class:`Settings` without touching
skills (what clients need); :func:`create_worker_app` also loads the skills
named by ``SKILLQ_SKILLS`` and registers one Celery task per skill. The
module-level ``app`` is built on first attribute access, not at import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import socket
from typing import Any

import redis
from celery import Celery, Task, signals
from celery.exceptions import Ignore, Reject, Retry

from ..core.errors import ConfigurationError, JobFailed, RedisMisconfigured, spec_for
from ..core.secrets import SecretSource, take_from_environment
from ..core.settings import Settings
from ..core.tracing import HEADER, STATE_HEADER
from ..interface.skills import Skill, SkillSet, describe_sources, load_skills
from ..store.agents import describe_agent
from ..store.artifacts import open_store
from ..store.celery_results import fused
from ..store.connections import CONNECT_TIMEOUT, probe_redis
from ..store.job_status import job_error
from ..store.keys import Keys
from ..store.outage import UNREACHABLE
from ..store.redis_config import check_redis
from ..store.registry import WorkerAnnouncer
from ..store.storecheck import check_apart
from ..wire.celery_app import configured_app
from ..wire.resigning import resigned
from ..wire.submission import shown_kwargs
from . import leases, metrics, supervision
from .attach import announced, attach, load_factory
from .delays import WAKE_HEADER
from .depths import DepthSampler
from .endings import finish
from .joblogs import shape_worker_logs
from .outcome import Outcome
from .process import Engine, ProcessRuntime
from .runner import run_job
from .schedules import ScheduleFirer
from .sentinel_transport import keep_transport_across_reconnects

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    skills: SkillSet | None = None,
    secrets: SecretSource | None = None,
) -> Celery:
    """A Celery app configured for skillq; with ``skills``, one that serves them."""
    settings = settings or Settings()
    skills = skills if skills is not None else SkillSet()
    app = configured_app(settings, skills, consuming=True)
    if len(skills):
        factory = load_factory(settings.capabilities)

        def setup(rt: ProcessRuntime) -> None:
            attach(rt, skills, app, factory)

        engine = Engine(settings, secrets, setup)
        for name in skills:
            register_skill(app, engine, skills[name])
        agent = describe_agent(
            settings.agent, settings.agent_description, announced(factory, settings)
        )
        connect_worker_signals(app, engine, settings, skills, agent)
        supervision.install(app, settings)
    return app


def pool_name(controller: Any) -> str:
    """``prefork``, ``threads``, ``solo``... as the worker was started with."""
    pool = getattr(controller, "pool_cls", None)
    module = getattr(pool, "__module__", "") or str(pool or "")
    named = {"thread": "threads", "async_pool": "async"}
    return named.get(module.rsplit(".", 1)[-1], module.rsplit(".", 1)[-1])


def register_skill(app: Celery, engine: Engine, skill: Skill) -> None:
    # The runner enforces time_limit itself; Celery's hard limit (prefork only)
    # is the backstop for a handler that blocks its event loop.
    settings = engine.settings
    hard_limit = (
        skill.time_limit + settings.cancel_grace + settings.hard_time_limit_margin
        if skill.time_limit
        else None
    )

    def run(self: Task[Any, Any], *args: Any, **kwargs: Any) -> Any:
        job_id: str = self.request.id or ""
        hostname = self.request.hostname or socket.gethostname()
        runtime = engine.runtime()
        try:
            delivery = self.request.delivery_info or {}
            queue = delivery.get("routing_key") or skill.queue
            trace = trace_headers(self.request) if runtime.observed.tracing.enabled else None
            outcome = run_job(runtime, skill, job_id, args, kwargs, hostname, queue, trace)
        except UNREACHABLE as exc:
            # Redis stayed away longer than SKILLQ_REDIS_OUTAGE_BUDGET: keep the
            # message (not acknowledged) so the job is delivered again.
            log.error("job %s left for redelivery: Redis unreachable (%s)", job_id, exc)
            raise Reject(exc, requeue=True) from exc
        except (asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            log.warning("job %s left for redelivery: the worker process is shutting down", job_id)
            raise Reject(str(exc) or "shutdown", requeue=True) from exc
        if outcome.state == "superseded":
            raise Ignore()  # the delivery that took the job over reports it

        def again() -> dict[str, Any]:
            """The same call back on the queue to wait: its signature renewed to outlast it."""
            ttl = settings.auth_ttl + (outcome.delay or 0.0)
            return resigned(
                kwargs, key=settings.auth_secret, job_id=job_id, skill=skill.name, ttl=ttl
            )

        if outcome.state in ("waiting", "suspended"):
            # Over a limit, or waiting by its own choice (ctx.sleep): the same message
            # again after the delay (parked in Redis when long); this one is acked.
            try:
                # A job waiting for input is woken early by client.respond, by job id.
                wake = {WAKE_HEADER: job_id} if outcome.state == "suspended" else {}
                self.signature_from_request(
                    self.request, args, again(), countdown=outcome.delay, **hidden(kwargs)
                ).apply_async(headers=wake)
            except Exception as exc:
                log.error("job %s: cannot put it back to wait: %s", job_id, exc)
                raise Reject(exc, requeue=True) from exc
            raise Ignore()
        if outcome.state == "retrying":
            try:
                # The same job id, args and queue, after the backoff; Celery acks this one.
                raise self.retry(
                    kwargs=again(), countdown=outcome.delay, max_retries=None, **hidden(kwargs)
                )
            except Retry:
                raise
            except Exception as exc:  # the retry could not be queued: the job fails
                log.error("job %s: cannot queue its retry: %s", job_id, exc)
                lost = Outcome("failed", error=job_error(exc))
                outcome = finish(runtime, job_id, hostname, lost, "")
        if outcome.state == "succeeded":
            return outcome.result
        if outcome.state == "cancelled":
            if not outcome.celery_stored:
                self.backend.mark_as_revoked(job_id, "cancelled", request=self.request)
            send_revoked_event(self)
            raise Ignore()
        error = outcome.error
        failed = JobFailed(
            job_id,
            error.type if error else "Error",
            error.message if error else "failed",
            error.code if error else "handler_error",
        )
        if error is not None and error.traceback:
            # Celery formats the chain, so its stored traceback shows the handler's.
            raise failed from HandlerTraceback(error.traceback)
        raise failed

    # Celery compiles a signature from the function's name: keep it an identifier.
    run.__name__ = run.__qualname__ = "skill_" + re.sub(r"\W", "_", skill.name)
    app.task(  # type: ignore[call-overload]
        name=skill.task_name,
        bind=True,
        queue=skill.queue,
        typing=False,
        throws=(JobFailed,),
        time_limit=hard_limit,
        # With fused results skillq's FINISH script stores Celery's meta.
        ignore_result=fused(engine.settings),
        # Fused, skillq writes every outcome's meta itself (supervision included),
        # with the handler's traceback; Celery's copy would overwrite it.
        store_errors_even_if_ignored=not fused(engine.settings),
        acks_late=True,
        reject_on_worker_lost=True,
    )(run)


def trace_headers(request: Any) -> dict[str, str]:
    """The trace context the producer put in the message's headers."""
    found = {}
    for name in (HEADER, STATE_HEADER):
        value = getattr(request, name, None)
        if isinstance(value, str) and len(value) <= 512:
            found[name] = value
    return found


def hidden(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Options that keep a grant out of a re-sent message's ``kwargsrepr``."""
    return {"kwargsrepr": shown_kwargs(kwargs)} if "grant" in kwargs else {}


class HandlerTraceback(Exception):
    """The handler's traceback, chained to the JobFailed Celery records."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0] if self.args else "")


def send_revoked_event(task: Task[Any, Any]) -> None:
    """Tell Celery's monitors (Flower, ``celery events``) that a cancelled job ended.

    The task ends with ``Ignore``, after which Celery sends no terminal
    event of its own; without this the job shows as STARTED forever.
    """
    request = task.request
    if not getattr(request, "hostname", None) or not task.app.conf.worker_send_task_events:
        return
    try:
        task.send_event("task-revoked", terminated=False, signum=None, expired=False)
    except Exception as exc:  # monitoring is best effort
        log.debug("cannot send task-revoked for %s: %s", request.id, exc)


def connect_worker_signals(
    app: Celery, engine: Engine, settings: Settings, skills: SkillSet, agent: dict[str, Any]
) -> None:
    """Worker lifecycle hooks, filtered to this app so other apps are unaffected."""
    announcers: list[WorkerAnnouncer] = []
    servers: list[Any] = []
    firers: list[ScheduleFirer] = []

    def on_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            # ``-E`` lives on the worker, not in the config its pool children see.
            app.conf.worker_send_task_events = bool(getattr(sender, "task_events", False))

    def on_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        """After Celery's logging is set up, before the pool and consumer start."""
        if getattr(instance, "app", None) is not app:
            return
        keep_transport_across_reconnects()
        scoped = sorted(name for name in skills if skills[name].scopes)
        if scoped and settings.auth_secret is None:
            log.warning(
                "skills %s declare scopes but SKILLQ_AUTH_KEY is not set: scopes are whatever "
                "a producer claims. Set SKILLQ_AUTH_KEY (and SKILLQ_REQUIRE_AUTH=true)",
                ", ".join(scoped),
            )
        sources, shadowed = describe_sources(skills, settings.skill_modules)
        for line in sources:
            log.info("%s", line)
        for line in shadowed:
            log.warning("%s", line)
        try:
            for warning in check_redis(
                [settings.broker_url, settings.effective_redis_url], settings=settings
            ):
                log.warning("%s", warning)
        except RedisMisconfigured as exc:
            log.critical("refusing to start: %s", exc)
            # Signal handlers' exceptions are only logged; SystemExit stops the worker.
            raise SystemExit(spec_for(exc).exit_code) from exc
        except redis.RedisError as exc:
            log.warning("cannot check the Redis configuration now: %s", exc)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
        # Fails fast and tries again at the next beat: an outage is counted in beats.
        client = probe_redis(settings.effective_redis_url, CONNECT_TIMEOUT, settings=settings)
        broker = probe_redis(settings.broker_url, CONNECT_TIMEOUT, settings=settings)
        announcer = WorkerAnnouncer(
            client,
            Keys(settings.key_prefix),
            sender.hostname,
            skills,
            queues,
            settings.heartbeat_interval,
            agent=agent,
            pool=pool_name(getattr(sender, "controller", sender)),
            concurrency=getattr(getattr(sender, "controller", sender), "concurrency", None),
            each_beat=DepthSampler(broker, client, Keys(settings.key_prefix), queues),
        )
        announcer.start()
        announcers.append(announcer)
        firers.append(ScheduleFirer(app, settings).start())
        if settings.metrics_port is not None:
            servers.append(metrics.serve(settings))

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        for announcer in announcers:
            announcer.stop()
        for firer in firers:
            firer.stop()
        for server in servers:
            server.shutdown()
        leases.close_keeper()  # the last acknowledgements reach Redis before the exit
        engine.close()

    def on_process_shutdown(**_: Any) -> None:
        engine.close()
        metrics.process_ended(settings)

    def on_logging(**_: Any) -> None:
        # In the main process and again in each pool process Celery sets up.
        shape_worker_logs(settings.log_format)

    signals.worker_init.connect(on_init, weak=False)
    signals.celeryd_after_setup.connect(on_setup, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False)
    signals.after_setup_logger.connect(on_logging, weak=False)


def create_worker_app(settings: Settings | None = None) -> Celery:
    """The app a worker runs; bad configuration fails here, before any job is taken."""
    settings = settings or Settings()
    open_store(settings)  # an unusable SKILLQ_ARTIFACTS_URL is refused at start
    # Said before any job runs, not refused: skills that write no artifacts work
    # regardless, and a bucket may be created after the workers start.
    store = check_apart(settings)
    if store.refused:
        log.error("%s: jobs that write artifacts will fail until this is fixed", store.message)
    elif not store.ok:
        log.warning("the artifact store cannot be reached now: %s", store.message)
    metrics.prepare(settings)  # before anything imports prometheus_client
    # Skills and the processes they start must not inherit the secrets or the
    # signing key: take them out of the environment before any job runs.
    secrets = SecretSource(take_from_environment(os.environ), settings.secrets_dir)
    skills = load_skills(settings.skill_modules)
    if settings.require_auth and settings.auth_secret is None:
        raise ConfigurationError(
            "SKILLQ_REQUIRE_AUTH is set but SKILLQ_AUTH_KEY is not: without a signing key any "
            "producer that can write to Redis could claim any scope"
        )
    if not len(skills):
        raise ConfigurationError(
            f"no skills found in {', '.join(settings.skill_modules) or '(nothing)'} "
            "(SKILLQ_SKILLS): a worker without skills would take jobs it can only fail"
        )
    return create_app(settings, skills=skills, secrets=secrets)


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """Build ``app`` when Celery (or a user) first asks for it."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_worker_app()
        return _app
    raise AttributeError(name)

"""Configuration shared by workers, clients and the CLI.

Everything is read from ``SKILLQ_*`` environment variables when a
:class:`Settings` is constructed, never at import time, so a process (or a
test) decides when configuration is taken.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidArgs
from .quotas import Quota, parse_quotas

AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def default_artifacts_url() -> str:
    """A per-user directory, so a worker and a client on one host agree."""
    return (Path.home() / ".skillq" / "artifacts").as_uri()


class Settings(BaseSettings):
    """All knobs of skillq; docs/SETTINGS.md has the table."""

    model_config = SettingsConfigDict(env_prefix="SKILLQ_", extra="ignore", frozen=True)

    broker_url: str = "redis://localhost:6379/0"
    result_backend: str | None = None
    redis_url: str | None = None
    key_prefix: str = "skillq"
    # Redis behind Sentinel (URLs sentinel://host:26379/0;sentinel://...): the
    # name the sentinels monitor the primary under, the password of the Redis
    # servers when the URL carries none, and the sentinels' own password.
    sentinel_master: str | None = None
    redis_password: SecretStr | None = None
    sentinel_password: SecretStr | None = None
    # Replicas a submit and a job's outcome must reach before they count as
    # done (Redis WAIT). None: 1 when the URL is a Sentinel one and the
    # sentinels report a replica, else 0.
    redis_min_replicas: int | None = Field(default=None, ge=0)
    redis_replica_timeout: float = Field(default=2.0, gt=0)

    artifacts_url: str = Field(default_factory=default_artifacts_url)
    s3_endpoint_url: str | None = None
    secrets_dir: Path | None = None
    skills: str = "tasks"

    # Seconds a delivery's lease lasts unless its worker renews it (every third
    # of it): how soon a dead or frozen worker's job runs elsewhere. Job length
    # is not bounded by it.
    lease: float = Field(default=30.0, ge=1)
    # Before leases: the seconds before an unacknowledged job was redelivered.
    # Accepted so old deployments start; no longer used.
    visibility_timeout: int = Field(default=3600, ge=1)
    result_expires: int = Field(default=86400, ge=1)
    job_retention: int = Field(default=7 * 86400, ge=1)
    stream_maxlen: int = Field(default=10_000, ge=1)
    cancel_grace: float = Field(default=5.0, ge=0)
    cancel_kill_after: float = Field(default=5.0, ge=0)
    hard_time_limit_margin: float = Field(default=30.0, ge=0)
    soft_shutdown_timeout: float = Field(default=0.0, ge=0)
    cancel_ttl: int = Field(default=7 * 86400, ge=1)
    max_args_bytes: int = Field(default=1024 * 1024, ge=1)
    max_event_bytes: int = Field(default=256 * 1024, ge=1)
    max_result_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    heartbeat_interval: float = Field(default=10.0, gt=0)
    redis_retries: int = Field(default=10, ge=0)
    redis_outage_budget: float = Field(default=60.0, ge=0)
    max_deliveries: int = Field(default=3, ge=1)
    max_args_depth: int = Field(default=64, ge=2)
    skill_grace: float = Field(default=3600.0, ge=0)
    auth_key: SecretStr | None = None
    auth_ttl: int = Field(default=3600, ge=1)
    require_auth: bool = False
    direct_publish: bool = True
    agent: str = "skillq"
    agent_description: str = ""
    capabilities: str = ""
    max_call_depth: int = Field(default=8, ge=1)
    call_timeout: float = Field(default=3600.0, gt=0)
    job_log_lines: int = Field(default=1000, ge=0)
    log_format: str = Field(default="text", pattern="^(text|json)$")
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    metrics_dir: Path | None = None
    tracing: str = ""
    limit_lease: float = Field(default=30.0, ge=1)
    limit_wait_max: float = Field(default=5.0, gt=0)
    grant_key: SecretStr | None = None
    grant_private_key: SecretStr | None = None
    grant_public_key: SecretStr | None = None
    grant_max_ttl: float = Field(default=7 * 86400.0, gt=0)
    sandbox: str = "auto"
    sandbox_timeout: float = Field(default=30.0, gt=0)
    sandbox_max_timeout: float = Field(default=600.0, gt=0)
    sandbox_memory_mb: int = Field(default=512, ge=16)
    sandbox_cpu_seconds: int = Field(default=600, ge=1)
    sandbox_disk_mb: int = Field(default=64, ge=1)
    sandbox_file_size_mb: int = Field(default=16, ge=1)
    sandbox_open_files: int = Field(default=64, ge=8)
    sandbox_processes: int = Field(default=64, ge=2)
    sandbox_output_bytes: int = Field(default=1024 * 1024, ge=1024)
    sandbox_python: str = ""
    server_tokens: SecretStr | None = None
    server_tokens_file: Path | None = None
    server_jwt_key: SecretStr | None = None
    server_jwt_public_key: SecretStr | None = None
    server_jwt_audience: str | None = None
    server_admin_scope: str = "skillq:admin"
    server_public_url: str | None = None
    server_max_wait: float = Field(default=60.0, gt=0)
    server_max_body: int | None = Field(default=None, ge=1024)
    server_max_streams_per_caller: int = Field(default=32, ge=1)
    server_stream_buffer: int = Field(default=1000, ge=10)
    max_schedules_per_owner: int = Field(default=1000, ge=1)
    # The async pool (--pool async): Redis connections its jobs share, whatever -c says.
    async_pool_connections: int = Field(default=32, ge=1)
    # Seconds a handler may hold the async pool's loop before it is reported.
    loop_block_warning: float = Field(default=0.5, gt=0)
    default_quota: str = ""  # "usd=20/day, tokens=5e5/6h": every owner without their own

    @field_validator("key_prefix")
    @classmethod
    def _prefix_has_no_colon(cls, value: str) -> str:
        if not value or ":" in value:
            raise ValueError("key_prefix must be non-empty and contain no ':'")
        return value

    @field_validator("default_quota")
    @classmethod
    def _quota_reads(cls, value: str) -> str:
        try:
            parse_quotas(value)
        except InvalidArgs as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("agent")
    @classmethod
    def _agent_is_a_name(cls, value: str) -> str:
        if not AGENT_NAME.match(value):
            raise ValueError(
                f"agent must match {AGENT_NAME.pattern} (it is part of skillq:// URLs)"
            )
        return value

    @staticmethod
    def secret_value(value: SecretStr | None) -> str | None:
        """A secret setting's text; empty counts as unset."""
        if value is None or not value.get_secret_value():
            return None
        return value.get_secret_value()

    @property
    def auth_secret(self) -> str | None:
        """The signing key; an empty ``SKILLQ_AUTH_KEY`` counts as none."""
        if self.auth_key is None or not self.auth_key.get_secret_value():
            return None
        return self.auth_key.get_secret_value()

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or self.broker_url

    @property
    def effective_server_max_body(self) -> int:
        """Largest request body the server reads: room for the largest args a worker
        accepts plus the request around them."""
        return self.server_max_body or self.max_args_bytes + 64 * 1024

    @property
    def default_quotas(self) -> dict[str, Quota]:
        return parse_quotas(self.default_quota)

    @property
    def skill_modules(self) -> list[str]:
        return [name.strip() for name in self.skills.split(",") if name.strip()]

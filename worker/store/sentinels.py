"""Redis behind Sentinel: Celery's ``sentinel://`` URLs, understood by every
client skillq makes.

A URL names the sentinels, not the primary: ``sentinel://h1:26379/0;
sentinel://h2:26379/0;sentinel://h3:26379/0`` (Celery's and kombu's form).
The primary's name is ``SKILLQ_SENTINEL_MASTER``. A client asks the
sentinels where the primary is when it connects, and again whenever its
connection breaks or the server it reaches answers that it is now a replica
(redis-py's ``SentinelManagedConnection``), so the retries every skillq
client already makes through a Redis restart carry it across a failover.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from redis.asyncio.sentinel import SentinelManagedConnection as _AsyncManaged
from redis.sentinel import MasterNotFoundError
from redis.sentinel import SentinelManagedConnection as _SyncManaged

from ..core.errors import ConfigurationError
from ..core.settings import Settings

log = logging.getLogger(__name__)

SCHEME = "sentinel://"
# A sentinel that has not answered in this long is skipped for the next one.
SENTINEL_TIMEOUT = 1.0


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME)


@dataclass(frozen=True)
class SentinelURL:
    """What a ``sentinel://`` URL says: the sentinels, the database, and the
    password (and user) of the Redis servers they watch."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        sentinels: list[tuple[str, int]] = []
        db: int | None = None
        username = password = None
        for part in (piece.strip() for piece in url.split(";")):
            if not part:
                continue
            if not is_sentinel(part):
                raise ConfigurationError(
                    f"{part!r} in a Sentinel URL: every part must be sentinel://host:port/db"
                )
            split = urlsplit(part)
            try:
                port = split.port or 26379
            except ValueError as exc:
                raise ConfigurationError(f"bad port in Sentinel URL part {part!r}") from exc
            if not split.hostname:
                raise ConfigurationError(f"no host in Sentinel URL part {part!r}")
            sentinels.append((split.hostname, port))
            path = split.path.strip("/")
            if path and db is None:
                if not path.isdigit():
                    raise ConfigurationError(f"bad database {path!r} in Sentinel URL")
                db = int(path)
            if split.password is not None and password is None:
                password = unquote(split.password)
                username = unquote(split.username) if split.username else None
        if not sentinels:
            raise ConfigurationError("a Sentinel URL names no sentinel")
        return cls(tuple(sentinels), db or 0, username, password)

    @property
    def group(self) -> frozenset[tuple[str, int]]:
        """Which sentinels: two URLs naming the same ones reach the same primary."""
        return frozenset(self.sentinels)

    def with_password(self, password: str | None) -> str:
        """The URL as Celery reads it, with ``password`` for the Redis servers
        (kombu passes the URL's password to the primary, not to sentinels)."""
        auth = f":{quote(password, safe='')}@" if password else ""
        return ";".join(f"{SCHEME}{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)


_primaries: dict[tuple[str, str], tuple[str, int]] = {}
# redis-py names each sentinel that failed by its client's whole repr.
_CLIENT_REPR = re.compile(
    r"<redis\.(?:asyncio\.)?client\.Redis\(.*?host=([^,]+),port=(\d+).*?\)>\)>\)>"
)


def readable(exc: BaseException) -> str:
    """redis-py's "no master found" with each sentinel as host:port, not a repr."""
    return _CLIENT_REPR.sub(r"sentinel \1:\2", str(exc))


def followed(pool: Any, address: tuple[str, int]) -> None:
    """Log, once per process and group of sentinels, each move of the primary
    a connection follows."""
    group = sorted(
        f"{c.connection_pool.connection_kwargs.get('host')}:"
        f"{c.connection_pool.connection_kwargs.get('port')}"
        for c in pool.sentinel_manager.sentinels
    )
    key = (str(pool.service_name), ",".join(group))
    before = _primaries.get(key)
    _primaries[key] = address
    if before is not None and before != address:
        log.warning(
            "Redis primary %r moved from %s:%s to %s:%s (a Sentinel failover): following it",
            pool.service_name,
            *before,
            *address,
        )


class FollowingConnection(_SyncManaged):
    """redis-py's Sentinel connection, asking the sentinels on every connect.

    redis-py asks them only in ``connect()``; a command that finds its
    connection broken reconnects through ``connect_check_health``, straight
    to the host it last reached: after a failover, the dead primary, for
    every retry of that command (and for ever, on a client that holds its
    one connection). Asking in ``_connect`` covers every path."""

    def _connect_retry(self) -> Any:
        try:
            return super()._connect_retry()  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            raise MasterNotFoundError(readable(exc)) from None

    def _connect(self) -> Any:
        if self.connection_pool.is_master:
            try:
                self.host, self.port = self.connection_pool.get_master_address()
            except MasterNotFoundError as exc:
                raise MasterNotFoundError(readable(exc)) from None
            followed(self.connection_pool, (self.host, self.port))
        return super()._connect()  # type: ignore[no-untyped-call]


class AsyncFollowingConnection(_AsyncManaged):
    """The asyncio twin of :class:`FollowingConnection`."""

    async def _connect_retry(self) -> Any:
        try:
            return await super()._connect_retry()  # type: ignore[no-untyped-call]
        except MasterNotFoundError as exc:
            raise MasterNotFoundError(readable(exc)) from None

    async def _connect(self) -> Any:
        if self.connection_pool.is_master:
            try:
                self.host, self.port = await self.connection_pool.get_master_address()
            except MasterNotFoundError as exc:
                raise MasterNotFoundError(readable(exc)) from None
            followed(self.connection_pool, (self.host, self.port))
        return await super()._connect()  # type: ignore[no-untyped-call]


def master_name(settings: Settings) -> str:
    if not settings.sentinel_master:
        raise ConfigurationError(
            "a sentinel:// URL needs SKILLQ_SENTINEL_MASTER: the name the sentinels "
            "monitor the primary under ('sentinel monitor <name> ...')"
        )
    return settings.sentinel_master


def sentinel_kwargs(settings: Settings, timeout: float = SENTINEL_TIMEOUT) -> dict[str, Any]:
    """How skillq talks to the sentinels themselves."""
    found: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    password = Settings.secret_value(settings.sentinel_password)
    if password:
        found["password"] = password
    return found


def server_auth(settings: Settings, target: SentinelURL) -> dict[str, Any]:
    """The password (and user) of the Redis servers: the URL's, else the setting's."""
    password = target.password or Settings.secret_value(settings.redis_password)
    auth: dict[str, Any] = {}
    if password:
        auth["password"] = password
    if target.username:
        auth["username"] = target.username
    return auth


def _pool(
    settings: Settings, url: str, pool_class: Any, sentinel_class: Any, connection: dict[str, Any]
) -> Any:
    """A pool of connections to the primary the sentinels name (either flavour)."""
    target = SentinelURL.parse(url)
    sentinel = sentinel_class(list(target.sentinels), sentinel_kwargs=sentinel_kwargs(settings))
    return pool_class(
        master_name(settings),
        sentinel,
        is_master=True,
        db=target.db,
        **server_auth(settings, target),
        **connection,
    )


def sync_client(settings: Settings, url: str, *, single: bool = False, **connection: Any) -> Any:
    """A blocking client of the primary the sentinels name, following failovers."""
    from redis import Redis
    from redis.sentinel import Sentinel, SentinelConnectionPool

    connection["connection_class"] = FollowingConnection
    pool = _pool(settings, url, SentinelConnectionPool, Sentinel, connection)
    return Redis(connection_pool=pool, single_connection_client=single)


def async_client(settings: Settings, url: str, *, pool_class: Any = None, **connection: Any) -> Any:
    """The asyncio twin of :func:`sync_client`; ``pool_class`` a subclass of
    redis-py's ``SentinelConnectionPool`` (a bounded, blocking one)."""
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    connection["connection_class"] = AsyncFollowingConnection
    pool = _pool(settings, url, pool_class or SentinelConnectionPool, Sentinel, connection)
    return Redis(connection_pool=pool)


def celery_url(settings: Settings, url: str) -> str:
    """``url`` as Celery and kombu are given it: a Sentinel URL carries the
    Redis password of ``SKILLQ_REDIS_PASSWORD`` when it has none of its own."""
    if not is_sentinel(url):
        return url
    target = SentinelURL.parse(url)
    return target.with_password(target.password or Settings.secret_value(settings.redis_password))


def celery_options(settings: Settings) -> dict[str, Any]:
    """Transport options kombu's and Celery's Sentinel support reads."""
    options: dict[str, Any] = {"master_name": master_name(settings)}
    password = Settings.secret_value(settings.sentinel_password)
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options


def sentinel_view(settings: Settings, url: str) -> dict[str, Any]:
    """What the sentinels say: the primary's address, its replicas (address and
    flags) and each sentinel's answer, for ``skillq health`` and the default of
    ``SKILLQ_REDIS_MIN_REPLICAS``. A sentinel that does not answer is listed
    with its error."""
    from redis import Redis
    from redis.exceptions import RedisError

    target = SentinelURL.parse(url)
    name = master_name(settings)
    view: dict[str, Any] = {"master": name, "primary": None, "replicas": [], "sentinels": []}
    for host, port in target.sentinels:
        entry: dict[str, Any] = {"address": f"{host}:{port}"}
        try:
            with Redis(
                host=host, port=port, decode_responses=True, **sentinel_kwargs(settings)
            ) as c:
                primary = c.sentinel_get_master_addr_by_name(name)
                entry["primary"] = f"{primary[0]}:{primary[1]}" if primary else None
                if view["primary"] is None and primary:
                    view["primary"] = entry["primary"]
                    view["replicas"] = [
                        {"address": f"{r['ip']}:{r['port']}", "flags": r.get("flags", "")}
                        for r in c.sentinel_slaves(name)
                    ]
        except RedisError as exc:
            entry["error"] = str(exc)
        view["sentinels"].append(entry)
    return view


def replica_count(settings: Settings, url: str) -> int:
    """Replicas the sentinels report up (not down, not disconnected)."""
    replicas = sentinel_view(settings, url)["replicas"]
    return sum(
        1
        for replica in replicas
        if not {"s_down", "o_down", "disconnected"} & set(str(replica["flags"]).split(","))
    )

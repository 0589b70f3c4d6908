"""A whole stack on one machine with nothing installed: a Redis server, an
S3-compatible server and worker processes, for the demo, tests and benchmarks."""

from .sentinel import SentinelGroup
from .stack import (
    EmbeddedRedis,
    HttpServerProcess,
    S3Server,
    WorkerProcess,
    find_redis_server,
    free_port,
    wait_for,
)

__all__ = [
    "EmbeddedRedis",
    "HttpServerProcess",
    "S3Server",
    "SentinelGroup",
    "WorkerProcess",
    "find_redis_server",
    "free_port",
    "wait_for",
]

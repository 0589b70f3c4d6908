"""One caller's event streams never fail another caller's request.

Before: every stream request read Redis (the job's record) before the
per-caller cap counted it, and every stream read its events on the pool the
server's requests use (redis-py's asyncio pool: 100 connections, failing the
101st at once). Bob asking for 300 streams of one job, or a few callers each
within their cap, took that pool whenever Redis was slow for a moment: Bob's
streams and Alice's plain requests were answered 503. Real uvicorn in front
of a real worker and a real Redis, called over loopback with a bounded number
of connections; Redis is made slow by ``CLIENT PAUSE``."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from worker.embedded import HttpServerProcess, WorkerProcess
from worker.server.principals import new_token, token_hash

ALICE, BOB = new_token(), new_token()
OTHERS = [new_token() for _ in range(6)]
TOKENS = [
    {"sha256": token_hash(ALICE), "subject": "alice", "scopes": []},
    {"sha256": token_hash(BOB), "subject": "bob", "scopes": []},
    *({"sha256": token_hash(t), "subject": f"o{n}", "scopes": []} for n, t in enumerate(OTHERS)),
]
CAP = 32  # streams per caller
BOBS_STREAMS = 300
SLOW_MS = 2000  # how long Redis is slow while the streams are asked for
ROUNDS = 5  # of Alice's requests once the streams are open
READ_SECONDS = 30  # at most, for any one answer


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(
    stack_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> Iterator[HttpServerProcess]:
    env = {
        **stack_env,
        "SKILLQ_SERVER_TOKENS": json.dumps(TOKENS),
        "SKILLQ_SERVER_MAX_STREAMS_PER_CALLER": str(CAP),
    }
    worker = start_worker(pool="threads", concurrency=2, queues="default", env=env)
    with HttpServerProcess(env) as process:
        yield process
    worker.stop(timeout=10)


def slow_down(raw: redis.Redis) -> None:
    """Redis answers nobody but ``raw`` for SLOW_MS (a slow or busy Redis): every
    command sent meanwhile holds its connection until then."""
    raw.client_pause(SLOW_MS, all=True)


@dataclass
class Stream:
    """One ``GET /v1/jobs/{id}/events`` on a socket of its own."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    seen: bytes = b""

    @classmethod
    async def ask(cls, url: str, token: str, job: str) -> Stream:
        """Send the request; :meth:`status` reads the answer."""
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        return cls(reader, writer)

    async def status(self) -> object:
        """The answer's status code, or why there is none."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), READ_SECONDS)
        except (OSError, TimeoutError) as exc:
            return type(exc).__name__
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else f"no answer: {line!r}"

    async def holds(self, text: bytes) -> bool:
        """Whether ``text`` comes on this socket before it ends (or READ_SECONDS pass)."""
        try:
            async with asyncio.timeout(READ_SECONDS):
                while text not in self.seen:
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        return False
                    self.seen = self.seen[-4096:] + chunk
        except (OSError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        self.writer.close()


async def waiting_job(http: httpx.AsyncClient, token: str) -> str:
    """A job nobody serves: it stays queued, so its streams stay open."""
    made = await http.post(
        "/v1/jobs",
        json={"skill": "echo", "args": {"message": "wait"}, "queue": "nobody-serves-this"},
        headers=auth(token),
    )
    assert made.status_code == 202, made.text
    return str(made.json()["job_id"])


async def meanwhile(
    http: httpx.AsyncClient, job: str, streams: list[Stream]
) -> tuple[list[object], list[object]]:
    """The streams' status codes, and Alice's list and status requests sent once
    every stream was asked for, until all are answered, then ROUNDS more while
    they are open: (the streams' codes, Alice's codes)."""
    answers: list[object] = []
    answered = asyncio.Event()

    async def statuses() -> list[object]:
        try:
            return list(await asyncio.gather(*(stream.status() for stream in streams)))
        finally:
            answered.set()

    async def one_round() -> None:
        for path in ("/v1/jobs", f"/v1/jobs/{job}"):
            try:
                answers.append((await http.get(path, headers=auth(ALICE))).status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

    async def alice() -> None:
        await one_round()
        while not answered.is_set():
            await one_round()
        for _ in range(ROUNDS):
            await one_round()

    codes, _ = await asyncio.gather(statuses(), alice())
    return codes, answers


async def delivered_the_end(
    http: httpx.AsyncClient, streams: list[Stream], owners: dict[str, str]
) -> Counter[bool]:
    """Cancel the jobs (owner by job id); then for each stream, whether it delivered
    the cancellation: it works, not only its headers."""
    for job, token in owners.items():
        done = await http.post(f"/v1/jobs/{job}/cancel", headers=auth(token))
        assert done.status_code == 200, done.text
    return Counter(await asyncio.gather(*(s.holds(b'"cancelled"') for s in streams)))


def test_one_callers_many_streams_leave_other_callers_served(
    server: HttpServerProcess, raw: redis.Redis
) -> None:
    """While Redis is slow, Bob asks for 300 streams of one job: his cap's worth
    are served, the rest refused 429, and Alice is served meanwhile."""

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=READ_SECONDS) as http:
            job = await waiting_job(http, BOB)
            mine = await waiting_job(http, ALICE)
            slow_down(raw)
            streams = list(
                await asyncio.gather(
                    *(Stream.ask(server.url, BOB, job) for _ in range(BOBS_STREAMS))
                )
            )
            try:
                codes, answers = await meanwhile(http, mine, streams)
                assert set(answers) == {200}, Counter(answers)
                assert Counter(codes) == {200: CAP, 429: BOBS_STREAMS - CAP}, Counter(codes)
                refused = [s for s, code in zip(streams, codes, strict=True) if code == 429]
                assert await refused[0].holds(b"too_many_streams")
                served = [s for s, code in zip(streams, codes, strict=True) if code == 200]
                assert await delivered_the_end(http, served, {job: BOB}) == {True: CAP}
            finally:
                for stream in streams:
                    stream.close()

    asyncio.run(scenario())


def test_many_callers_streams_within_their_caps_leave_other_callers_served(
    server: HttpServerProcess, raw: redis.Redis
) -> None:
    """While Redis is slow, six callers at their caps ask for 192 streams, more
    than the connections a server's requests share: every stream is served,
    and so is Alice."""

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=READ_SECONDS) as http:
            jobs = [await waiting_job(http, token) for token in OTHERS]
            mine = await waiting_job(http, ALICE)
            slow_down(raw)
            streams = list(
                await asyncio.gather(
                    *(
                        Stream.ask(server.url, token, job)
                        for token, job in zip(OTHERS, jobs, strict=True)
                        for _ in range(CAP)
                    )
                )
            )
            try:
                codes, answers = await meanwhile(http, mine, streams)
                assert set(answers) == {200}, Counter(answers)
                assert Counter(codes) == {200: CAP * len(OTHERS)}, Counter(codes)
                owners = dict(zip(jobs, OTHERS, strict=True))
                ended = await delivered_the_end(http, streams, owners)
                assert ended == {True: CAP * len(OTHERS)}
            finally:
                for stream in streams:
                    stream.close()

    asyncio.run(scenario())

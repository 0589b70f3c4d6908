"""``SkillClient.result`` waits in the caller's thread on one shared pub/sub
connection: woken by the job's terminal event, and never stuck when that event
is lost (a reconnect or a long silence makes it re-read the record)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis

from worker.client.subscription import Deadline
from worker.client.waiting import FinishWaiter
from worker.embedded import EmbeddedRedis, wait_for
from worker.store.job_status import JobStatus
from worker.store.keys import Keys

KEYS = Keys("waitq")
NEVER = 3600.0  # no silence fallback: only the pushed event or a reconnect can wake the wait


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    instance = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield instance
    instance.close()


def status_reader(client: redis.Redis) -> Callable[[str], JobStatus]:
    def read(job_id: str) -> JobStatus:
        return JobStatus.from_hash(job_id, cast(dict[str, str], client.hgetall(KEYS.job(job_id))))

    return read


def running_job(client: redis.Redis) -> str:
    job_id = uuid.uuid4().hex
    client.hset(KEYS.job(job_id), mapping={"state": "running", "skill": "x"})
    return job_id


def subscribers(client: redis.Redis, job_id: str) -> int:
    return int(cast(Any, client.pubsub_numsub(KEYS.events(job_id)))[0][1])


def subscribed(client: redis.Redis, job_id: str, count: int) -> Callable[[], bool]:
    return lambda: subscribers(client, job_id) == count


class Waiting(threading.Thread):
    """Runs one wait in its own thread and keeps what it returned or raised."""

    def __init__(self, waiter: FinishWaiter, client: redis.Redis, job_id: str) -> None:
        super().__init__(daemon=True)
        self.waiter, self.read, self.job_id = waiter, status_reader(client), job_id
        self.outcome: JobStatus | BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = self.waiter.wait(self.job_id, self.read, Deadline(30))
        except BaseException as exc:
            self.outcome = exc

    def result(self) -> JobStatus | BaseException | None:
        self.join(40)
        assert not self.is_alive(), "the wait did not return"
        return self.outcome


def finish(client: redis.Redis, job_id: str, *, publish: bool) -> None:
    client.hset(KEYS.job(job_id), "state", "succeeded")
    if publish:
        envelope = {"job_id": job_id, "seq": 2, "kind": "status"}
        envelope["payload"] = {"state": "succeeded"}
        client.publish(KEYS.events(job_id), json.dumps(envelope, separators=(",", ":")))


def test_the_terminal_event_wakes_the_wait(client: redis.Redis) -> None:
    waiter = FinishWaiter(client, KEYS, catch_up_after=NEVER)
    for _ in range(3):  # the one connection serves one job after another
        job_id = running_job(client)
        waiting = Waiting(waiter, client, job_id)
        waiting.start()
        wait_for(subscribed(client, job_id, 1), 10, "the subscription")
        finish(client, job_id, publish=True)
        outcome = waiting.result()
        assert isinstance(outcome, JobStatus) and outcome.state == "succeeded"
        wait_for(subscribed(client, job_id, 0), 10, "the unsubscribe")
    waiter.close()


def test_a_lost_connection_makes_the_wait_read_the_record(client: redis.Redis) -> None:
    waiter = FinishWaiter(client, KEYS, catch_up_after=NEVER)
    job_id = running_job(client)
    waiting = Waiting(waiter, client, job_id)
    waiting.start()
    wait_for(lambda: subscribers(client, job_id) == 1, 10, "the subscription")
    finish(client, job_id, publish=False)  # the terminal event is lost...
    client.client_kill_filter(_type="pubsub")  # ...with the connection that would carry it
    outcome = waiting.result()
    assert isinstance(outcome, JobStatus) and outcome.state == "succeeded"
    waiter.close()


def test_a_silence_makes_the_wait_read_the_record(client: redis.Redis) -> None:
    waiter = FinishWaiter(client, KEYS, catch_up_after=0.2)
    job_id = running_job(client)
    waiting = Waiting(waiter, client, job_id)
    waiting.start()
    wait_for(lambda: subscribers(client, job_id) == 1, 10, "the subscription")
    finish(client, job_id, publish=False)
    outcome = waiting.result()
    assert isinstance(outcome, JobStatus) and outcome.state == "succeeded"
    waiter.close()


def test_a_second_thread_is_sent_elsewhere_instead_of_queueing(client: redis.Redis) -> None:
    waiter = FinishWaiter(client, KEYS, catch_up_after=NEVER)
    first = running_job(client)
    waiting = Waiting(waiter, client, first)
    waiting.start()
    wait_for(lambda: subscribers(client, first) == 1, 10, "the subscription")
    assert waiter.wait(running_job(client), status_reader(client), Deadline(1)) is None
    finish(client, first, publish=True)
    assert isinstance(waiting.result(), JobStatus)
    waiter.close()


def test_the_wait_ends_at_its_deadline(client: redis.Redis) -> None:
    waiter = FinishWaiter(client, KEYS, catch_up_after=NEVER)
    job_id = running_job(client)
    with pytest.raises(TimeoutError, match=job_id):
        waiter.wait(job_id, status_reader(client), Deadline(0.5))
    assert subscribers(client, job_id) == 0
    waiter.close()

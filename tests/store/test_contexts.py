"""An A2A context is kept by ``SUBMIT``: the record names it and the owner's index
of that context lists the job, which ``UNSUBMIT`` takes out again. Run on every
Redis skillq supports (``tests.redis_binaries``)."""

from __future__ import annotations

import redis

from tests.redis_binaries import redis_server
from worker.core.settings import Settings
from worker.embedded import EmbeddedRedis
from worker.store.keys import Keys
from worker.store.scripts import SUBMIT, UNSUBMIT
from worker.wire.skill_info import SkillInfo
from worker.wire.submission import SubmitOptions, draft

__all__ = ["redis_server"]  # the fixture: each test runs on every supported binary


def test_submit_indexes_a_context_per_owner_and_unsubmit_forgets_it(
    redis_server: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys, settings = Keys(), Settings(broker_url=redis_server.url)
    info = SkillInfo(name="echo")
    submit, unsubmit = client.register_script(SUBMIT), client.register_script(UNSUBMIT)

    def made(owner: str, context: str | None, job_id: str) -> list[str]:
        options = SubmitOptions("echo", {}, owner=owner, job_id=job_id, context=context)
        planned = draft(settings, keys, info, options)
        assert submit(keys=planned.submit_keys, args=planned.submit_args) == 1
        return planned.submit_keys

    alices = made("alice", "talk", "job-a1")
    made("alice", "talk", "job-a2")
    made("bob", "talk", "job-b1")  # the same contextId, another owner: another context
    made("alice", None, "job-a3")
    assert client.hget(keys.job("job-a1"), "context") == "talk"
    assert client.hget(keys.job("job-a3"), "context") is None
    assert client.zrange(keys.context("alice", "talk"), 0, -1) == ["job-a1", "job-a2"]
    assert client.zrange(keys.context("bob", "talk"), 0, -1) == ["job-b1"]
    assert client.ttl(keys.context("alice", "talk")) > 0  # expires as the records do
    assert keys.context("alice", "talk") != keys.context("alicet", "alk")
    assert unsubmit(keys=alices, args=["job-a1"]) == 1
    assert client.zrange(keys.context("alice", "talk"), 0, -1) == ["job-a2"]
    client.close()

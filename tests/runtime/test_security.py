"""Signed calls bind everything, secrets stay secret, defaults are safe."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import AUTH_KEY, GRANT_KEY, SECRET_VALUE, held, wait_for
from worker.client import SkillClient
from worker.core.errors import JobFailed
from worker.core.settings import Settings
from worker.embedded import WorkerProcess
from worker.store.keys import Keys


def taken_off_the_queue(client: SkillClient, raw: redis.Redis, skill: str, args: Any) -> Any:
    """A signed message as the client sent it, taken off a queue nobody consumes."""
    queue = f"held-{uuid.uuid4().hex[:8]}"
    job_id = client.submit(skill, args, auth={"scopes": ["text:read"]}, queue=queue)
    item: Any = raw.rpop(queue)
    return job_id, json.loads(item)


def with_args(envelope: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(base64.b64decode(envelope["body"]))
    body[1]["args"] = args
    return {**envelope, "body": base64.b64encode(json.dumps(body).encode()).decode()}


def finished(client: SkillClient, job_id: str) -> bool:
    try:
        return client.status(job_id).finished
    except Exception:
        return False


def states(client: SkillClient, job_id: str) -> list[str]:
    return [e["payload"]["state"] for e in client.events(job_id) if e["kind"] == "status"]


def test_args_changed_on_the_queue_fail_the_signed_call_and_run_nothing(
    worker: WorkerProcess, client: SkillClient, settings: Settings
) -> None:
    raw = redis.Redis.from_url(settings.effective_redis_url)
    job_id, envelope = taken_off_the_queue(client, raw, "wordcount", {"text": "honest words"})
    raw.lpush("ext", json.dumps(with_args(envelope, {"text": "attacker words here"})))
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=30)
    assert caught.value.error_type == "InvalidAuth" and caught.value.code == "invalid_auth"
    assert "args do not match the signed call" in caught.value.error_message
    events = list(client.events(job_id))
    assert [e["kind"] for e in events] == ["status", "status"]  # running, failed: nothing else
    assert client.status(job_id).artifacts == []


def test_a_replayed_signed_message_does_not_run_again(
    worker: WorkerProcess, client: SkillClient, settings: Settings
) -> None:
    raw = redis.Redis.from_url(settings.effective_redis_url)
    job_id, envelope = taken_off_the_queue(client, raw, "wordcount", {"text": "run once"})
    item = json.dumps(envelope)
    raw.lpush("ext", item)
    assert client.result(job_id, timeout=30)["words"] == 2
    # Replayed while the record exists: the stored outcome stands, nothing reruns.
    raw.lpush("ext", item)
    wait_for(lambda: raw.llen("ext") == 0 and not held(raw, job_id), 20, "the replay taken")
    assert client.status(job_id).attempts == 1
    # Replayed after the record is gone: refused for the signature's lifetime.
    keys = Keys()
    raw.delete(keys.job(job_id), keys.stream(job_id))
    raw.lpush("ext", item)
    wait_for(lambda: finished(client, job_id), 30, "the replay to be refused")
    status = client.status(job_id)
    assert status.state == "failed" and status.error is not None
    assert status.error.type == "InvalidAuth" and "already ran" in status.error.message
    assert states(client, job_id) == ["failed"]


def secret_free(*texts: str) -> None:
    for text in texts:
        assert SECRET_VALUE not in text
        for cut in (5, 3):  # nor its pieces as they were streamed
            assert SECRET_VALUE[:cut] + SECRET_VALUE[cut:] not in text


def test_a_secret_streamed_in_pieces_never_appears(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = client.submit("streams_secret", {})
    assert client.result(job_id, timeout=30) == "streamed"
    events = list(client.events(job_id))
    streamed = "".join(e["payload"]["text"] for e in events if e["kind"] == "text_delta")
    assert SECRET_VALUE not in streamed
    assert streamed == f"the key is *** and then {SECRET_VALUE[:3]}"
    secret_free(json.dumps(events), client.status(job_id).model_dump_json())


def test_printed_secrets_never_reach_the_worker_log(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = client.submit("prints_secret", {})
    assert client.result(job_id, timeout=30) == "printed"
    wait_for(lambda: "written in two pieces" in worker.log_path.read_text(), 10, "the prints")
    log = worker.log_path.read_text(errors="replace")
    assert "stdout has ***" in log and "stderr has ***" in log
    assert "*** written in two pieces" in log
    assert SECRET_VALUE not in log


@pytest.mark.parametrize(
    ("where", "error_type"),
    [("event_kind", "InvalidEvent"), ("artifact_name", "InvalidArtifactName")],
)
def test_a_secret_as_an_event_kind_or_artifact_name_is_refused(
    worker: WorkerProcess, client: SkillClient, where: str, error_type: str
) -> None:
    job_id = client.submit("misuses_secret", {"where": where})
    with pytest.raises(JobFailed) as caught:
        client.result(job_id, timeout=30)
    assert caught.value.error_type == error_type
    assert "contains a secret" in caught.value.error_message
    secret_free(
        json.dumps(list(client.events(job_id))),
        client.status(job_id).model_dump_json(),
        worker.log_path.read_text(errors="replace"),
    )
    assert client.status(job_id).artifacts == []


def test_skills_and_their_subprocesses_do_not_inherit_secrets(
    worker: WorkerProcess, client: SkillClient
) -> None:
    job_id = client.submit("environment", {})
    seen = client.result(job_id, timeout=30)
    assert seen["secret_readable"] is True
    for listing in (seen["environ"], seen["child"]):
        assert "SKILLQ_SECRET_OPENAI_KEY" not in listing
        assert "SKILLQ_AUTH_KEY" not in listing
        assert "SKILLQ_GRANT_KEY" not in listing
    assert "SKILLQ_BROKER_URL" in seen["environ"]  # the rest of the environment is kept
    assert AUTH_KEY not in json.dumps(seen) and GRANT_KEY not in json.dumps(seen)


def test_require_auth_without_a_key_refuses_to_start(stack_env: dict[str, str]) -> None:
    env = {k: v for k, v in stack_env.items() if k != "SKILLQ_AUTH_KEY"}
    refused = WorkerProcess({**env, "SKILLQ_REQUIRE_AUTH": "true"}, pool="threads", queues="x")
    refused.env.pop("SKILLQ_AUTH_KEY", None)
    refused.start()
    assert refused.process is not None
    assert refused.process.wait(60) != 0
    log = refused.log_path.read_text()
    assert "SKILLQ_REQUIRE_AUTH is set but SKILLQ_AUTH_KEY is not" in log


def test_scoped_skills_without_a_key_start_with_a_warning(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str]
) -> None:
    worker = start_worker(pool="threads", queues="unsigned", env={"SKILLQ_AUTH_KEY": ""})
    log = worker.log_path.read_text()
    assert "declare scopes but SKILLQ_AUTH_KEY is not set" in log
    assert "wordcount" in log
    worker.stop()

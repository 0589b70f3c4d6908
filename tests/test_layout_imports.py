"""The client side stands alone: submitting a job loads none of the worker runtime."""

from __future__ import annotations

import json
import subprocess
import sys

from worker.embedded import EmbeddedRedis

RUNTIME = (
    "worker.app",
    "worker.runner",
    "worker.runtime",
    "worker.supervision",
    "worker.transport",
    "worker.celery_context",
    "worker.cancellation",
    "celery.worker",
)

PROBE = """
import json, sys
from worker.client import SkillClient
from worker.settings import Settings
from worker.submission import SkillInfo
with SkillClient(Settings(broker_url=sys.argv[1])) as client:
    client._cache.update({"echo": SkillInfo(name="echo", workers=["nobody"])})
    job = client.submit("echo", {"message": "hi"})
    assert client.status(job).state == "queued"
print(json.dumps(sorted(sys.modules)))
"""


def test_submitting_loads_none_of_the_worker_runtime(redis_server: EmbeddedRedis) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert [m for m in loaded if m.startswith(RUNTIME)] == []

"""``skillq demo``: a real worker and a real job on an embedded Redis.

Nothing needs to be installed or configured: Redis is started privately on a
free port, artifacts go to a temporary directory, and everything is stopped
at the end.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console

from ..client.display import watch_events
from ..client.sync import SkillClient
from ..core.settings import Settings
from .stack import EmbeddedRedis, WorkerProcess


def run_demo(console: Console, *, pool: str = "threads", words: int = 24) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="skillq-demo-"))
    artifacts_url = (workdir / "artifacts").as_uri()
    with EmbeddedRedis(directory=workdir / "redis") as server:
        # A signing key of its own: the demo runs the way production should.
        auth_key = secrets.token_hex(32)
        env = {
            "SKILLQ_BROKER_URL": server.url,
            "SKILLQ_ARTIFACTS_URL": artifacts_url,
            "SKILLQ_SKILLS": "tasks",
            "SKILLQ_AUTH_KEY": auth_key,
            "SKILLQ_REQUIRE_AUTH": "true",
        }
        console.print(f"[bold]skillq demo[/bold]: Redis on {server.url}, artifacts in {workdir}")
        worker = WorkerProcess(
            env, pool=pool, concurrency=2, loglevel="WARNING", log_path=workdir / "worker.log"
        ).start()
        try:
            worker.wait_ready(server.url)
            console.print(f"worker [cyan]{worker.hostname}[/cyan] is ready ({pool} pool)")
            settings = Settings(
                broker_url=server.url, artifacts_url=artifacts_url, auth_key=SecretStr(auth_key)
            )
            with SkillClient(settings) as client:
                console.print("skills: " + ", ".join(s.name for s in client.skills()))
                job = client.submit("story", {"words": words, "delay": 0.05})
                console.print(f"\nsubmitted [bold]story[/bold] as job {job}\n")
                watch_events(console, job, client.events(job, timeout=60))
                console.print(f"result: {client.result(job, timeout=10)}")

                report = client.submit("report", {"title": "demo", "lines": ["It works."]})
                client.result(report, timeout=30)
                for ref in client.artifacts(report):
                    body = client.read_artifact(ref).decode()
                    console.print(f"\nartifact [blue]{ref.name}[/blue] ({ref.mime_type}):")
                    console.print(body, highlight=False)
                state = client.status(job).state
        finally:
            worker.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    console.print("[green]demo finished[/green]" if state == "succeeded" else state)
    return 0 if state == "succeeded" else 1

"""Deployment artefacts and horizontal scaling, run as processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml

from tests.conftest import wait_for
from worker.client import SkillClient
from worker.client.backlog import queue_depths
from worker.core.settings import Settings
from worker.embedded import WorkerProcess, free_port
from worker.store.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
SKILLQ = str(Path(sys.executable).parent / "skillq")


def test_compose_file_validates_and_wires_the_topology() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is required (make test installs Debian's package)"

    def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "-f", str(ROOT / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env=env,
        )

    plain = {
        k: v for k, v in os.environ.items() if k not in ("SKILLQ_AUTH_KEY", "SKILLQ_SERVER_TOKENS")
    }
    tokens = '[{"sha256": "' + "0" * 64 + '", "subject": "ops", "scopes": []}]'
    refused = config({**plain, "SKILLQ_SERVER_TOKENS": tokens})
    assert refused.returncode != 0 and "SKILLQ_AUTH_KEY" in refused.stderr
    # As docs/DEPLOYING.md says: the signing key alone is enough to start.
    keyed = config({**plain, "SKILLQ_AUTH_KEY": "compose-test-key"})
    assert keyed.returncode == 0, keyed.stderr
    assert yaml.safe_load(keyed.stdout)["services"]["server"]["profiles"] == ["http"]
    done = config({**plain, "SKILLQ_AUTH_KEY": "compose-test-key", "SKILLQ_SERVER_TOKENS": tokens})
    assert done.returncode == 0, done.stderr
    config_text = yaml.safe_load(done.stdout)
    services = config_text["services"]
    assert {
        "redis",
        "minio",
        "create-bucket",
        "worker",
        "server",
        "flower",
        "exporter",
        "demo",
    } <= set(services)
    # Consoles without a login of their own stay on the host's loopback.
    for name in ("flower", "minio", "exporter"):
        for port in services[name]["ports"]:
            published = port if isinstance(port, str) else port.get("host_ip", "")
            assert str(published).startswith("127.0.0.1"), (name, port)
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] is None  # passed through
    assert services["server"]["command"][:2] == ["skillq", "serve"]
    assert services["server"]["environment"]["SKILLQ_SERVER_TOKENS"] == tokens
    assert "--appendonly" in services["redis"]["command"]
    assert services["worker"]["environment"]["SKILLQ_BROKER_URL"] == "redis://redis:6379/0"
    assert services["worker"]["environment"]["SKILLQ_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["worker"]["environment"]["SKILLQ_REQUIRE_AUTH"] == "true"
    assert services["worker"]["environment"]["SKILLQ_AUTH_KEY"] == "compose-test-key"
    assert "ports" not in services["worker"], "workers must scale: no fixed host ports"
    assert services["worker"]["depends_on"]["create-bucket"]["condition"] == (
        "service_completed_successfully"
    )


def test_an_image_for_your_own_skills() -> None:
    """docs/DEPLOYING.md's recipe, without a container engine: the image it
    builds on is the one compose tags, the skill module lands in the folder
    the base image's worker starts in (which ``skillq worker`` puts on the
    path), and compose accepts the override file."""
    from tests.docs.blocks import blocks

    page = {b.file_name: b.text for b in blocks(ROOT / "docs" / "DEPLOYING.md", ROOT)}
    recipe = page["Dockerfile.skills"].splitlines()
    base = (ROOT / "Dockerfile").read_text().splitlines()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"FROM {compose['services']['worker']['image']}" in recipe
    [workdir] = [line.split()[1] for line in base if line.startswith("WORKDIR ")][-1:]
    [copy] = [line for line in recipe if line.startswith("COPY ")]
    assert copy.split()[-1].rstrip("/") == workdir
    assert "ENV SKILLQ_SKILLS=myskills" in recipe and "myskills.py" in copy
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is required (make test installs Debian's package)"
    with tempfile.TemporaryDirectory() as folder:
        override = Path(folder) / "compose.skills.yaml"
        override.write_text(page["compose.skills.yaml"])
        done = subprocess.run(
            [binary, "-f", str(ROOT / "docker-compose.yml"), "-f", str(override), "config"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, "SKILLQ_AUTH_KEY": "compose-test-key"},
        )
    assert done.returncode == 0, done.stderr
    worker = yaml.safe_load(done.stdout)["services"]["worker"]
    assert worker["image"] == "myskills:latest"
    assert worker["build"]["dockerfile"] == "Dockerfile.skills"


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER skillq" in text
    assert "HEALTHCHECK" in text and "skillq" in text.split("HEALTHCHECK", 1)[1]
    assert "-c constraints.txt" in text


KNOWN = {
    "Deployment.spec": {"replicas", "selector", "strategy", "template"},
    "PodSpec": {"terminationGracePeriodSeconds", "securityContext", "containers"},
    "Container": {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "env",
        "envFrom",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "securityContext",
    },
    "ScaledObject.spec": {
        "scaleTargetRef",
        "pollingInterval",
        "cooldownPeriod",
        "minReplicaCount",
        "maxReplicaCount",
        "triggers",
    },
    "Trigger": {"type", "metricType", "metadata"},
}


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def test_kubernetes_manifests_name_real_fields() -> None:
    docs = manifests()
    worker = docs[("Deployment", "skillq-worker")]
    assert worker["apiVersion"] == "apps/v1"
    assert set(worker["spec"]) <= KNOWN["Deployment.spec"]
    pod = worker["spec"]["template"]["spec"]
    assert set(pod) <= KNOWN["PodSpec"]
    container = pod["containers"][0]
    assert set(container) <= KNOWN["Container"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    config = docs[("ConfigMap", "skillq-config")]["data"]
    assert config["SKILLQ_REQUIRE_AUTH"] == "true"
    soft = float(config["SKILLQ_SOFT_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > soft, "grace must cover the soft shutdown"
    assert worker["spec"]["selector"]["matchLabels"].items() <= (
        worker["spec"]["template"]["metadata"]["labels"].items()
    )

    scaled = docs[("ScaledObject", "skillq-worker")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert set(scaled["spec"]) <= KNOWN["ScaledObject.spec"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "skillq-worker"
    trigger = scaled["spec"]["triggers"][0]
    assert set(trigger) <= KNOWN["Trigger"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["valueLocation"] == "total"
    assert "skillq-exporter" in trigger["metadata"]["url"]
    assert ("Service", "skillq-exporter") in docs
    server = docs[("Deployment", "skillq-server")]
    assert set(server["spec"]) <= KNOWN["Deployment.spec"]
    server_pod = server["spec"]["template"]["spec"]
    assert set(server_pod) <= KNOWN["PodSpec"]
    [serving] = server_pod["containers"]
    assert set(serving) <= KNOWN["Container"]
    assert serving["command"][:2] == ["skillq", "serve"]
    assert serving["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service = docs[("Service", "skillq-server")]
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    for (kind, name), document in docs.items():
        if kind == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert container["imagePullPolicy"] == "IfNotPresent", name


def test_three_workers_share_a_queue_and_survive_losing_one(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    env = {"SKILLQ_LEASE": "3"}
    fleet = [start_worker(pool="prefork", concurrency=2, queues="fleet", env=env) for _ in range(3)]
    assert len({w.hostname for w in fleet}) == 3
    jobs = [client.submit("story", {"words": 5, "delay": 0.05}, queue="fleet") for _ in range(60)]
    wait_for(
        lambda: sum(client.status(j).finished for j in jobs) >= 10, 60, "the first jobs to finish"
    )
    victim = fleet[0]
    for pid in victim.pids():
        os.kill(pid, signal.SIGKILL)
    for job in jobs:
        assert client.result(job, timeout=120)["words"] == 5
    workers = {client.status(j).worker for j in jobs}
    assert len(workers) >= 2
    assert all(client.status(j).state == "succeeded" for j in jobs)
    for worker in fleet[1:]:
        worker.stop()


def test_backlog_counts_queued_and_running_jobs(
    start_worker: Callable[..., WorkerProcess],
    client: SkillClient,
    settings: Settings,
    stack_env: dict[str, str],
) -> None:
    queue = "backlog-q"
    worker = start_worker(pool="threads", concurrency=2, queues=queue)
    jobs = [client.submit("sleepy", {"seconds": 60}, queue=queue) for _ in range(5)]
    wait_for(lambda: sum(client.status(j).state == "running" for j in jobs) == 2, 30, "two running")
    raw = redis.Redis.from_url(settings.broker_url)
    (depth,) = queue_depths(raw, raw, Keys(), [queue])
    assert (depth.queued, depth.taken, depth.backlog) == (3, 2, 5)

    shown = subprocess.run(
        [SKILLQ, "queue-depth", "--queue", queue, "--json"],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[queue] == {
        "queue": queue,
        "queued": 3,
        "taken": 2,
        "backlog": 5,
    }

    port = free_port()
    exporter = subprocess.Popen(
        [SKILLQ, "exporter", "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, **stack_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def fetch(path: str) -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                    return str(r.read().decode())
            except OSError:
                return None

        body = wait_for(lambda: fetch(f"/backlog?queue={queue}"), 30, "the exporter")
        assert body is not None
        assert json.loads(body)["total"] == 5
        metrics = fetch("/metrics?queue=" + queue) or ""
        assert f'skillq_queue_backlog{{queue="{queue}"}} 5' in metrics
    finally:
        exporter.terminate()
        exporter.wait(10)

    for job in jobs:
        client.cancel(job)
    wait_for(lambda: queue_depths(raw, raw, Keys(), [queue])[0].backlog == 0, 30, "empty backlog")
    worker.stop()


def test_health_command(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str]
) -> None:
    worker = start_worker(pool="threads", concurrency=3, queues="health-q")
    env = {**os.environ, **stack_env}
    alive = subprocess.run([SKILLQ, "health", "--hostname", worker.hostname], env=env, check=False)
    assert alive.returncode == 0
    # Without a name: any worker on this host (test workers are named ...@localhost),
    # whatever its node name; before, only celery@<host> counted.
    anyone = subprocess.run(
        [SKILLQ, "health", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert anyone.returncode == 0, anyone.stderr
    said = json.loads(anyone.stdout)
    assert said["alive"] is True and worker.hostname in said["workers"]
    listed = subprocess.run(
        [SKILLQ, "workers", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    entry = next(e for e in json.loads(listed.stdout) if e["hostname"] == worker.hostname)
    assert (entry["pool"], entry["concurrency"], entry["running"]) == ("threads", 3, 0)
    assert entry["beat_at"] is not None and "echo" in [s["name"] for s in entry["skills"]]
    shown = subprocess.run(
        [SKILLQ, "workers"],
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert worker.hostname in shown.stdout and "threads" in shown.stdout
    worker.stop()
    gone = subprocess.run(
        [SKILLQ, "health", "--hostname", worker.hostname], env=env, capture_output=True, check=False
    )
    assert gone.returncode == 1


def test_the_grafana_dashboard_uses_only_metrics_skillq_exports(redis_server: Any) -> None:
    import re

    from worker.runtime.metrics import PrometheusMetrics
    from worker.server.exporter import DeploymentCollector
    from worker.store.keys import Keys

    exported: set[str] = set()
    for metric in vars(PrometheusMetrics()).values():
        kind, name = metric._type, metric._name
        if kind == "counter":
            exported.add(name + "_total")
        elif kind == "histogram":
            exported |= {name + "_bucket", name + "_count", name + "_sum"}
        else:
            exported.add(name)
    client = redis.Redis.from_url(redis_server.url)
    collector = DeploymentCollector([], client, client, Keys())
    exported |= {family.name for family in collector.collect()}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "skillq-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"skillq_[a-z_]+", target["expr"])
    }
    assert used and used <= exported, used - exported
    assert {"skillq_jobs_finished_total", "skillq_queue_backlog"} <= used


def test_the_sentinel_compose_file_puts_every_process_behind_three_sentinels() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is required (make test installs Debian's package)"
    files = [
        "-f",
        str(ROOT / "docker-compose.yml"),
        "-f",
        str(ROOT / "deploy/compose.sentinel.yml"),
    ]
    done = subprocess.run(
        [binary, *files, "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "SKILLQ_AUTH_KEY": "compose-test-key"},
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    sentinels = [f"sentinel-{n}" for n in (1, 2, 3)]
    assert {"redis", "redis-replica", *sentinels} <= set(services)
    assert services["redis-replica"]["command"][-4:-2] == ["redis", "6379"]
    for name in sentinels:
        script = " ".join(services[name]["entrypoint"])
        assert "sentinel monitor skillq redis 6379 2" in script and "--sentinel" in script
    for name in ("worker", "flower", "exporter", "server", "demo"):
        env = services[name]["environment"]
        assert env["SKILLQ_BROKER_URL"].count("sentinel://") == 3, name
        assert env["SKILLQ_SENTINEL_MASTER"] == "skillq"
        # The main file's settings stay: the override only moves Redis.
        assert env["SKILLQ_S3_ENDPOINT_URL"] == "http://minio:9000", name

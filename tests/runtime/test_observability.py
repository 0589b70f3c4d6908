"""Observability on real workers: a handler's log lines per job (in order,
redacted, never mixed with another job's), Prometheus metrics scraped over
HTTP from a prefork worker, and one trace from submit through a parent job
and its child on another worker."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_cli import skillq
from tests.conftest import SECRET_VALUE, wait_for
from tests.ext.ext_skills import FORGED
from worker.client import SkillClient
from worker.core.settings import Settings
from worker.embedded import WorkerProcess, free_port

OBSERVED = {"SKILLQ_SKILLS": "observed_skills"}


@pytest.fixture(scope="module")
def logger_worker(start_worker: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    process = start_worker(pool="threads", concurrency=2, queues="observed", env=OBSERVED)
    yield process
    process.stop(timeout=10)


def test_a_jobs_log_lines_are_its_own_in_order_and_redacted(
    logger_worker: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    jobs = {tag: client.submit("chatty", {"tag": tag, "lines": 30}) for tag in ("alpha", "beta")}
    for job in jobs.values():
        assert client.result(job, timeout=60) == 30
    for tag, job in jobs.items():
        lines = [line.message for line in client.logs(job, follow=False)]
        assert lines[:30] == [f"{tag} line {n}" for n in range(30)]
        assert lines[30] == f"{tag} knows ***"
        assert lines[31] == f"{tag} from a thread"  # asyncio.to_thread keeps the job
        assert len(lines) == 32
        done = skillq(stack_env, "logs", job)
        assert done.returncode == 0, done.stderr
        assert f"{tag} line 0" in done.stdout and f"{tag} knows ***" in done.stdout
        assert SECRET_VALUE not in done.stdout
        other = "beta" if tag == "alpha" else "alpha"
        assert other not in done.stdout
    assert SECRET_VALUE not in logger_worker.log_tail(400)


def test_logs_follow_a_running_job(
    logger_worker: WorkerProcess, client: SkillClient, stack_env: dict[str, str]
) -> None:
    job = client.submit("chatty", {"tag": "live", "lines": 200})
    done = skillq(stack_env, "logs", job, "--follow", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["message"] for line in lines[:200]] == [f"live line {n}" for n in range(200)]
    assert all(line["level"] in ("INFO", "WARNING") for line in lines)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= set(ls))


def test_a_prefork_workers_metrics_count_what_ran(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    port = free_port()
    worker = start_worker(
        pool="prefork",
        concurrency=2,
        queues="metered-q",
        env={"SKILLQ_METRICS_PORT": str(port)},
    )
    try:
        ok = [client.submit("echo", {"message": str(n)}, queue="metered-q") for n in range(4)]
        bad = [client.submit("boom", {}, queue="metered-q") for _ in range(2)]
        paid = [
            client.submit("pays", {"amount": 0.25}, queue="metered-q", budget={"usd": 1})
            for _ in range(2)
        ]
        slow = client.submit("sleepy", {"seconds": 60}, queue="metered-q")
        wait_for(lambda: client.status(slow).state == "running", timeout=30, what="sleepy")
        assert client.cancel(slow)
        everything = [*ok, *bad, *paid, slow]
        wait_for(
            lambda: all(client.status(job).finished for job in everything),
            timeout=60,
            what="every job to finish",
        )
        wait_for(
            lambda: value(scrape(port), "skillq_jobs_finished_total") >= 9,
            timeout=30,
            what="the metrics to count every job",
        )
        found = scrape(port)
        finished = "skillq_jobs_finished_total"
        assert value(found, finished, skill="echo", outcome="succeeded") == 4
        assert value(found, finished, skill="boom", outcome="failed") == 2
        assert value(found, finished, skill="sleepy", outcome="cancelled") == 1
        assert value(found, "skillq_jobs_failed_total", skill="boom", code="handler_error") == 2
        assert value(found, "skillq_jobs_started_total", queue="metered-q") == 9
        assert value(found, "skillq_job_duration_seconds_count") == 9
        assert value(found, "skillq_job_queue_wait_seconds_count") == 9
        assert value(found, "skillq_jobs_running") == 0
        assert value(found, "skillq_cancel_latency_seconds_count", skill="sleepy") == 1
        assert value(found, "skillq_events_written_total", skill="sleepy") >= 1
        assert value(found, "skillq_spend_total", skill="pays", unit="usd") == 0.5
    finally:
        worker.stop(timeout=10)


def spans_in(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_trace_runs_from_submit_through_a_child_on_another_worker(
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    traced = {
        "SKILLQ_TRACING": "observed_skills:provider",
        "SKILLQ_TEST_SPANS": str(spans_file),
    }
    parent_worker = start_worker(
        pool="prefork", concurrency=1, queues="traced-a", env={**OBSERVED, **traced}
    )
    child_worker = start_worker(
        pool="threads", concurrency=2, queues="default", env={"SKILLQ_SKILLS": "tasks", **traced}
    )
    monkeypatch.setenv("SKILLQ_TEST_SPANS", str(spans_file))  # the client's exporter
    producer = settings.model_copy(update={"tracing": "tests.ext.observed_skills:provider"})
    try:
        with SkillClient(producer) as c:
            job = c.submit("relay", {}, queue="traced-a")
            assert c.result(job, timeout=60) == {"message": "via relay"}
        wait_for(
            lambda: sum(s["name"].startswith("skillq.job") for s in spans_in(spans_file)) >= 2,
            timeout=30,
            what="both job spans",
        )
        spans = spans_in(spans_file)

        def one(name: str, job_id: str) -> dict[str, Any]:
            # By job id: the child's worker may also run other tests' echo jobs.
            return next(
                s for s in spans if s["name"] == name and s["attributes"]["skillq.job_id"] == job_id
            )

        submit = one("skillq.submit relay", job)
        parent = one("skillq.job relay", job)
        call = next(
            s
            for s in spans
            if s["name"] == "skillq.submit echo" and s["parent_id"] == parent["span_id"]
        )
        wait_for(
            lambda: any(
                s["attributes"].get("skillq.job_id") == call["attributes"]["skillq.job_id"]
                and s["name"] == "skillq.job echo"
                for s in spans_in(spans_file)
            ),
            timeout=30,
            what="the child's job span",
        )
        spans = spans_in(spans_file)
        child = one("skillq.job echo", call["attributes"]["skillq.job_id"])
        assert {submit["trace_id"], parent["trace_id"], child["trace_id"]} == {submit["trace_id"]}
        assert parent["parent_id"] == submit["span_id"]
        assert parent["attributes"]["skillq.outcome"] == "succeeded"
        assert parent["pid"] != child["pid"]  # two workers, one trace
        assert child["parent_id"] == call["span_id"]
        assert any(
            s["name"] == "skillq.artifact" and s["parent_id"] == parent["span_id"] for s in spans
        )
    finally:
        parent_worker.stop(timeout=10)
        child_worker.stop(timeout=10)


def test_json_worker_logs_name_the_job_and_skill(
    start_worker: Callable[..., WorkerProcess], client: SkillClient
) -> None:
    worker = start_worker(
        pool="prefork", concurrency=1, queues="json-logs", env={"SKILLQ_LOG_FORMAT": "json"}
    )
    try:
        job = client.submit("boom", {}, queue="json-logs")
        wait_for(lambda: client.status(job).finished, timeout=60, what="the failing job")

        def about_the_job() -> list[dict[str, Any]]:
            found = []
            for text in worker.log_tail(400).splitlines():
                try:
                    line = json.loads(text)
                except ValueError:
                    continue  # Celery's start banner is printed, not logged
                if isinstance(line, dict) and line.get("job_id") == job:
                    found.append(line)
            return found

        wait_for(lambda: bool(about_the_job()), timeout=30, what="a JSON log line of the job")
        lines = about_the_job()
        assert all(line["skill"] == "boom" for line in lines)
        assert any(line["level"] == "WARNING" and "failed" in line["message"] for line in lines)
        assert {"ts", "logger", "process"} <= set(lines[0])
    finally:
        worker.stop(timeout=10)


def test_a_request_with_trace_context_continues_the_callers_trace(
    start_worker: Callable[..., WorkerProcess], stack_env: dict[str, str], tmp_path: Path
) -> None:
    import httpx

    from worker.embedded import HttpServerProcess

    spans_file = tmp_path / "spans.jsonl"
    traced = {
        **stack_env,
        "SKILLQ_TRACING": "observed_skills:provider",
        "SKILLQ_TEST_SPANS": str(spans_file),
    }
    worker = start_worker(pool="threads", concurrency=1, queues="traced-http", env=traced)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        with HttpServerProcess(traced) as server, httpx.Client(base_url=server.url) as http:
            response = http.post(
                "/v1/jobs",
                json={"skill": "echo", "args": {"message": "traced"}, "queue": "traced-http"},
                headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
            )
            assert response.status_code == 202, response.text
            job = response.json()["job_id"]
            done = http.get(f"/v1/jobs/{job}/result", params={"wait": 30}).json()
            assert done["result"] == {"message": "traced"}
        wait_for(
            lambda: any(
                s["name"] == "skillq.job echo" and s["attributes"].get("skillq.job_id") == job
                for s in spans_in(spans_file)
            ),
            timeout=30,
            what="the job span",
        )
        spans = spans_in(spans_file)
        submit = next(
            s
            for s in spans
            if s["name"] == "skillq.submit echo" and s["attributes"].get("skillq.job_id") == job
        )
        run = next(
            s
            for s in spans
            if s["name"] == "skillq.job echo" and s["attributes"].get("skillq.job_id") == job
        )
        assert submit["trace_id"] == run["trace_id"] == caller_trace
        assert submit["parent_id"] == caller_span and run["parent_id"] == submit["span_id"]
    finally:
        worker.stop(timeout=10)


def test_printed_lines_are_the_jobs_log_and_cannot_forge_a_record(
    start_worker: Callable[..., WorkerProcess], client: SkillClient, stack_env: dict[str, str]
) -> None:
    """Before: with JSON logs a handler's print() reached the worker log verbatim, so a
    printed JSON object passed for a real record and escape bytes went to the log;
    ``skillq logs`` showed nothing of it, and would have passed escapes to a terminal."""
    worker = start_worker(
        pool="prefork", concurrency=1, queues="printing", env={"SKILLQ_LOG_FORMAT": "json"}
    )
    try:
        job = client.submit("prints_forgery", {}, queue="printing")
        assert client.result(job, timeout=60) == "printed"
        lines = [(line.logger, line.level, line.message) for line in client.logs(job)]
        assert ("stdout", "INFO", json.dumps(FORGED)) in lines
        assert ("stderr", "WARNING", "to stderr") in lines
        assert any("OVERWRITTEN" in message for _, _, message in lines)

        def records() -> list[dict[str, Any]]:
            found = []
            for text in worker.log_tail(400).splitlines():
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    found.append(record)
            return found

        wait_for(lambda: any(r.get("message") == "to stderr" for r in records()), 30, "the prints")
        log = worker.log_tail(400)
        assert "\x1b" not in log and "\x07" not in log
        assert not any(r.get("logger") == "worker.forged" for r in records())
        printed = [r for r in records() if r.get("logger") in ("stdout", "stderr")]
        assert len(printed) == 3 and all(r["job_id"] == job for r in printed), printed
        shown = skillq(stack_env, "logs", job)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout and "\r" not in shown.stdout
        assert "\x07" not in shown.stdout and "\\x1b[31mred" in shown.stdout
    finally:
        worker.stop(timeout=10)

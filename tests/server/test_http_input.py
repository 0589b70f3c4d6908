"""``POST /v1/jobs/{id}/input``: the job's owner answers its question; nobody
else can, nor tell it exists; a wrong answer is 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import wait_for
from tests.server.test_http_api import ALICE, BOB, api, api_env, auth

__all__ = ["api", "api_env"]  # the fixtures this module shares


def test_only_the_owner_answers_and_the_job_goes_on(api: httpx.Client) -> None:
    made = api.post("/v1/jobs", json={"skill": "asks_to_go"}, headers=auth(ALICE))
    assert made.status_code == 202, made.text
    job = made.json()["job_id"]

    def asking() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/v1/jobs/{job}", headers=auth(ALICE)).json()
        return status if status["state"] == "input_required" else None

    status = wait_for(asking, 30, "the question")
    assert status is not None
    assert status["question"]["question"] == "go on?"
    assert status["question"]["schema"]["properties"]["go"]["type"] == "boolean"
    stranger = api.post(f"/v1/jobs/{job}/input", json={"data": {"go": True}}, headers=auth(BOB))
    assert stranger.status_code == 404
    wrong = api.post(
        f"/v1/jobs/{job}/input", json={"data": {"go": "yes please"}}, headers=auth(ALICE)
    )
    assert wrong.status_code == 422 and "go" in wrong.json()["error"]["message"]
    right = api.post(f"/v1/jobs/{job}/input", json={"data": {"go": True}}, headers=auth(ALICE))
    assert right.status_code == 200, right.text
    result = api.get(f"/v1/jobs/{job}/result?wait=30", headers=auth(ALICE))
    assert result.json()["state"] == "succeeded" and result.json()["result"] is True
    again = api.post(f"/v1/jobs/{job}/input", json={"data": {"go": False}}, headers=auth(ALICE))
    assert again.status_code == 409

"""The HTTP submit body speaks SubmitOptions: no field of its own, none restated."""

from __future__ import annotations

import dataclasses

from worker.server.jobs_api import SubmitRequest
from worker.server.principals import JOB_NAMES, Principal
from worker.wire.submission import SubmitOptions

# Sugar the HTTP body offers for an options field: countdown is a relative eta.
SUGAR = {"countdown": "eta"}
# What the server decides, never the body: identity, ownership, a call's parent, tracing;
# retry_of: the retry route; context: an A2A message's contextId (the A2A route).
SERVER_SIDE = {"auth", "owner", "parent", "headers", "retry_of", "context"}


def test_every_field_of_the_body_is_a_submit_option_and_every_option_is_reachable() -> None:
    options = {field.name for field in dataclasses.fields(SubmitOptions)}
    body = set(SubmitRequest.model_fields)
    assert {SUGAR.get(name, name) for name in body} <= options
    assert options - SERVER_SIDE <= {SUGAR.get(name, name) for name in body}


def test_the_body_becomes_options_scoped_to_its_caller() -> None:
    alice = Principal("alice", ("reports",))
    request = SubmitRequest.model_validate(
        {
            "skill": "echo",
            "args": {"message": "hi"},
            "job_id": "nightly",
            "idempotency_key": "k",
            "eta": 2_000_000_000.0,
            "priority": 3,
            "time_limit": 5,
            "auth": {"subject": "root", "scopes": ["skillq:admin"]},  # ignored
        }
    )
    options = request.options(alice)
    assert options.auth == {"subject": "alice", "scopes": ["reports"]}
    assert options.owner == "alice" and options.job_id == alice.job_id(JOB_NAMES, "nightly")
    assert options.eta == 2_000_000_000.0 and options.priority == 3 and options.time_limit == 5
    assert options.idempotency_key is not None and "k" not in options.idempotency_key
    bob = request.options(Principal("bob"))
    assert (bob.job_id, bob.idempotency_key) != (options.job_id, options.idempotency_key)

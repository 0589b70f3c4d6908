"""The public API stays put: what ``worker`` exports, the paths earlier docs
showed, one exception base, and two clients with the same methods."""

from __future__ import annotations

import importlib
import inspect

import worker
import worker.core.errors as errors_module
from worker import AsyncSkillClient, SkillClient, SkillqError

EXPORTED = [
    "A2AClient",
    "AgentEvent",
    "AgentInfo",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStoreRefused",
    "ArtifactStoreUnavailable",
    "AsyncSkillClient",
    "BudgetExceeded",
    "CallResult",
    "CallerEnded",
    "CancelledByCaller",
    "Capabilities",
    "ConfigurationError",
    "DeliveryLimitExceeded",
    "DeliverySuperseded",
    "DiscoveryClient",
    "DuplicateStep",
    "HandlerAborted",
    "HttpA2AClient",
    "InputTimeout",
    "InvalidArgs",
    "InvalidArtifactName",
    "InvalidAuth",
    "InvalidEvent",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidResult",
    "InvalidSubmission",
    "InvalidWorkspacePath",
    "JobCancelled",
    "JobExpired",
    "JobFailed",
    "JobNotFound",
    "JobScope",
    "JobTimeout",
    "LocalCaller",
    "LocalDiscovery",
    "LocalRunContext",
    "LocalWorkspaces",
    "MessageRefused",
    "MissingScopes",
    "NoAuth",
    "NotReplicated",
    "NotRetryable",
    "NotWaitingForInput",
    "QuotaExceeded",
    "RedisMisconfigured",
    "RequestTooLarge",
    "RunContext",
    "SandboxClient",
    "SandboxResult",
    "SandboxUnavailable",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SchedulePage",
    "ScopedAuth",
    "SecretNotFound",
    "Settings",
    "Skill",
    "SkillClient",
    "SkillqError",
    "TooManySchedules",
    "TooManyStreams",
    "UnknownSkill",
    "WorkspaceClient",
    "WorkspaceDenied",
    "local_sandbox",
    "skill",
]

# Paths README or docs showed at some release, and a name each must still give.
DOCUMENTED_PATHS = {
    "worker.errors": "JobFailed",
    "worker.client": "SkillClient",
    "worker.app": "create_app",
    "worker.transport": "Transport",
    "worker.interface.context": "RunContext",
    "worker.core.errors": "SkillqError",
    "worker.core.signing": "sign",
    "worker.core.settings": "Settings",
}


def test_the_public_names_are_pinned_and_sorted() -> None:
    assert worker.__all__ == EXPORTED
    assert sorted(EXPORTED) == EXPORTED
    for name in EXPORTED:
        assert getattr(worker, name) is not None, name


def test_every_error_a_user_can_catch_is_exported_and_derives_from_skillq_error() -> None:
    defined = {
        name
        for name, value in vars(errors_module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        # Its own, and those of the modules it gathers (error_base, delivery_errors).
        and value.__module__.startswith("worker.core.")
    }
    assert defined <= set(EXPORTED), sorted(defined - set(EXPORTED))
    for name in defined:
        assert issubclass(getattr(worker, name), SkillqError), name
    # The seed's bases are kept, so handlers catching them still do.
    assert issubclass(worker.MissingScopes, PermissionError)
    assert issubclass(worker.CancelledByCaller, RuntimeError)
    assert issubclass(worker.SandboxUnavailable, RuntimeError)
    # Every class the tree in the module's docstring draws exists, and none is missing.
    drawn = {
        line.split("+-- ")[1].split()[0]
        for line in (errors_module.__doc__ or "").splitlines()
        if "+-- " in line
    }
    assert drawn == defined - {"SkillqError"}


def test_paths_the_docs_ever_showed_still_import() -> None:
    for path, name in DOCUMENTED_PATHS.items():
        module = importlib.import_module(path)
        assert getattr(module, name) is not None, path


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_sync_and_async_clients_have_the_same_methods() -> None:
    # close/aclose as httpx names them; the fan-out is for servers on an event loop.
    differences = {"close", "aclose", "use_fanout", "fanout"}
    assert public(SkillClient) - differences == public(AsyncSkillClient) - differences
    for name in public(SkillClient) - differences:
        ours, theirs = getattr(SkillClient, name), getattr(AsyncSkillClient, name)
        if callable(ours) and callable(theirs):
            mine = list(inspect.signature(ours).parameters)
            other = list(inspect.signature(theirs).parameters)
            assert mine == other, (name, mine, other)

"""skillq: run async agent skill handlers on Celery workers."""

from .capabilities.http_a2a import HttpA2AClient
from .capabilities.local import LocalCaller, LocalDiscovery, LocalWorkspaces, local_sandbox
from .core.a2a import A2AClient, CallResult
from .core.auth import NoAuth, ScopedAuth
from .core.capabilities import (
    AgentInfo,
    Capabilities,
    DiscoveryClient,
    JobScope,
    SandboxClient,
    SandboxResult,
    SandboxUnavailable,
    WorkspaceClient,
)
from .core.context import (
    AgentEvent,
    ArtifactRef,
    CancelledByCaller,
    LocalRunContext,
    MissingScopes,
    RunContext,
)
from .core.errors import InvalidGrant, SkillqError, WorkspaceDenied
from .core.settings import Settings
from .core.skills import Skill, skill

__all__ = [
    "A2AClient",
    "AgentEvent",
    "AgentInfo",
    "ArtifactRef",
    "CallResult",
    "CancelledByCaller",
    "Capabilities",
    "DiscoveryClient",
    "HttpA2AClient",
    "InvalidGrant",
    "JobScope",
    "LocalCaller",
    "LocalDiscovery",
    "LocalRunContext",
    "LocalWorkspaces",
    "MissingScopes",
    "NoAuth",
    "RunContext",
    "SandboxClient",
    "SandboxResult",
    "SandboxUnavailable",
    "ScopedAuth",
    "Settings",
    "Skill",
    "SkillqError",
    "WorkspaceClient",
    "WorkspaceDenied",
    "local_sandbox",
    "skill",
]

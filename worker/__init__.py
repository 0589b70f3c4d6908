"""skillq: run async agent skill handlers on Celery workers."""

from .a2a import A2AClient, CallResult, HttpA2AClient
from .auth import NoAuth, ScopedAuth
from .capabilities import (
    AgentInfo,
    DiscoveryClient,
    SandboxClient,
    SandboxResult,
    SandboxUnavailable,
    WorkspaceClient,
)
from .context import (
    AgentEvent,
    ArtifactRef,
    CancelledByCaller,
    LocalRunContext,
    MissingScopes,
    RunContext,
)
from .errors import SkillqError
from .settings import Settings
from .skills import Skill, skill

__all__ = [
    "A2AClient",
    "AgentEvent",
    "AgentInfo",
    "ArtifactRef",
    "CallResult",
    "CancelledByCaller",
    "DiscoveryClient",
    "HttpA2AClient",
    "LocalRunContext",
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
    "skill",
]

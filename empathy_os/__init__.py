"""empathy_os: short-term memory and live coordination for teams of agents, on Redis.

No Django here: the site builds on this library, never the other way round.
"""

from .coordinator import AgentCoordinator, AgentTask
from .defaults import Config
from .empathy import CollaborationState, EmpathyOS
from .exceptions import (
    AccessDeniedError,
    ConflictError,
    EmpathyError,
    InvalidInputError,
    LeaseError,
    MemoryUnavailableError,
    NotFoundError,
    StagingFullError,
    ValueTooLargeError,
)
from .patterns import (
    ConflictContext,
    ReviewLock,
    ReviewLockedError,
    StagedPattern,
    get_decision,
    get_review_locks,
    get_staged_pattern,
    lock_pattern,
    restore_staged_pattern,
    unlock_pattern,
)
from .redis_memory import RedisShortTermMemory, check_redis_connection, get_redis_memory
from .sessions import TeamSession, get_session_info, list_sessions
from .tiers import AccessTier, AgentCredentials


def create_conflict_context(memory, credentials, conflict_id, positions, **details):
    """Record a disagreement between agents (contributors and above)."""
    return memory.create_conflict_context(credentials, conflict_id, positions, **details)


def resolve_conflict(memory, credentials, conflict_id, resolution):
    """Resolve a conflict (validators only, exactly once)."""
    return memory.resolve_conflict(credentials, conflict_id, resolution)


def promote_pattern(memory, credentials, pattern_id, note=""):
    """Promote a staged pattern (validators only, exactly once)."""
    return memory.promote_pattern(credentials, pattern_id, note)


def reject_pattern(memory, credentials, pattern_id, reason):
    """Reject a staged pattern with a reason (validators only, exactly once)."""
    return memory.reject_pattern(credentials, pattern_id, reason)


__all__ = [
    "AccessDeniedError", "AccessTier", "AgentCoordinator", "AgentCredentials", "AgentTask",
    "CollaborationState", "Config", "ConflictContext", "ConflictError", "EmpathyError", "EmpathyOS",
    "InvalidInputError", "LeaseError", "MemoryUnavailableError", "NotFoundError", "RedisShortTermMemory",
    "ReviewLock", "ReviewLockedError", "StagedPattern", "StagingFullError", "TeamSession", "ValueTooLargeError",
    "check_redis_connection", "create_conflict_context", "get_decision",
    "get_redis_memory", "get_review_locks", "get_session_info", "get_staged_pattern",
    "list_sessions", "lock_pattern", "promote_pattern", "reject_pattern", "resolve_conflict",
    "restore_staged_pattern", "unlock_pattern",
]

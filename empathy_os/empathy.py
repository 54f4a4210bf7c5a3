"""``EmpathyOS``: one agent's handle on the shared short-term memory."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields

from .defaults import DEFAULT_TEAM
from .exceptions import EmpathyError, InvalidInputError
from .keys import validate_id
from .tiers import AccessTier, AgentCredentials


@dataclass
class CollaborationState:
    """What an agent has learned about working with its user, persisted per session."""

    trust_level: float = 0.5
    successful_interventions: int = 0
    failed_interventions: int = 0
    total_interactions: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> "CollaborationState":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class EmpathyOS:
    """An agent: its identity and tier, its working memory, signals, patterns and state."""

    def __init__(self, user_id: str, short_term_memory=None, access_tier=AccessTier.CONTRIBUTOR,
                 target_level: int = 3, *, team_id: str = DEFAULT_TEAM, session_id: str | None = None):
        self.user_id = validate_id(user_id, "user_id")
        self.short_term_memory = short_term_memory
        self.credentials = AgentCredentials(user_id, AccessTier.parse(access_tier), team_id)
        if isinstance(target_level, bool) or not isinstance(target_level, int) or not 1 <= target_level <= 5:
            raise InvalidInputError(f"target_level must be an integer from 1 to 5, got {target_level!r}")
        self.target_level = target_level
        self.current_empathy_level = 1
        self.session_id = validate_id(session_id, "session_id") if session_id else f"{user_id}-{uuid.uuid4().hex[:12]}"
        self.collaboration_state = CollaborationState()

    @property
    def access_tier(self) -> AccessTier:
        return self.credentials.tier

    def has_short_term_memory(self) -> bool:
        return self.short_term_memory is not None

    @property
    def _memory(self):
        if self.short_term_memory is None:
            raise EmpathyError(
                f"agent {self.user_id} has no short-term memory: pass short_term_memory=get_redis_memory()"
            )
        return self.short_term_memory

    # working memory
    def stash(self, key: str, value, ttl: float | None = None) -> None:
        """Store JSON data under ``key`` in this agent's working memory (default TTL one hour)."""
        self._memory.stash(self.credentials, key, value, ttl)

    def retrieve(self, key: str, agent_id: str | None = None):
        """This agent's value for ``key``, or another agent's with ``agent_id``; None if absent."""
        return self._memory.retrieve(self.credentials, key, agent_id)

    def forget(self, key: str) -> bool:
        return self._memory.forget(self.credentials, key)

    # signals
    def send_signal(self, signal_type: str, data=None, target_agent: str | None = None) -> str:
        """Send to ``target_agent``, or broadcast to the team when it is None."""
        return self._memory.send_signal(self.credentials, signal_type, data, target_agent)

    def receive_signals(self, signal_type: str | None = None, *, wait: float | None = None) -> list[dict]:
        return self._memory.receive_signals(self.credentials, signal_type, wait=wait)

    # patterns
    def stage_pattern(self, pattern) -> bool:
        return self._memory.stage_pattern(self.credentials, pattern)

    def get_staged_patterns(self):
        return self._memory.get_staged_patterns(self.credentials)

    def promote_pattern(self, pattern_id: str, note: str = ""):
        return self._memory.promote_pattern(self.credentials, pattern_id, note)

    def reject_pattern(self, pattern_id: str, reason: str):
        return self._memory.reject_pattern(self.credentials, pattern_id, reason)

    # conflicts
    def create_conflict_context(self, conflict_id: str, positions: dict, **details):
        return self._memory.create_conflict_context(self.credentials, conflict_id, positions, **details)

    def resolve_conflict(self, conflict_id: str, resolution):
        return self._memory.resolve_conflict(self.credentials, conflict_id, resolution)

    # collaboration state
    def persist_collaboration_state(self) -> bool:
        """Save the collaboration state and empathy level under this agent's ``session_id``."""
        state = asdict(self.collaboration_state)
        state["current_empathy_level"] = self.current_empathy_level
        state["target_level"] = self.target_level
        self._memory.persist_state(self.credentials, self.session_id, state)
        return True

    def restore_collaboration_state(self, session_id: str | None = None) -> bool:
        """Load the state saved under ``session_id`` (default: this agent's). False if none."""
        sid = self.session_id if session_id is None else session_id
        state = self._memory.restore_state(self.credentials, sid)
        if state is None:
            return False
        self.collaboration_state = CollaborationState.from_dict(state)
        self.current_empathy_level = state.get("current_empathy_level", self.current_empathy_level)
        self.session_id = sid
        return True

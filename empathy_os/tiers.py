"""Access tiers and the credentials every operation is checked against."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .defaults import DEFAULT_TEAM
from .exceptions import AccessDeniedError, InvalidInputError
from .keys import validate_id


class AccessTier(IntEnum):
    """What a caller may do. Each tier includes the ones below it."""

    OBSERVER = 1  #: reads everything of its team
    CONTRIBUTOR = 2  #: writes its own memory, tasks and signals, stages patterns
    VALIDATOR = 3  #: promotes and rejects patterns, resolves conflicts
    STEWARD = 4  #: administers the team: registers agents, acts on behalf of any agent

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def parse(cls, value) -> "AccessTier":
        """Accept an ``AccessTier``, its number (1-4) or its name (case-insensitive)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(t.name.lower() for t in cls)
        raise InvalidInputError(f"unknown access tier {value!r}: use one of {names}")


@dataclass(frozen=True)
class AgentCredentials:
    """Who is calling: an agent id, its tier and its team."""

    agent_id: str
    tier: AccessTier = AccessTier.CONTRIBUTOR
    team_id: str = DEFAULT_TEAM

    def __post_init__(self):
        validate_id(self.agent_id, "agent id")
        validate_id(self.team_id, "team id")
        object.__setattr__(self, "tier", AccessTier.parse(self.tier))

    def can_read(self) -> bool:
        return True

    def can_stage(self) -> bool:
        """Contributors and above write memory, tasks and signals and stage patterns."""
        return self.tier >= AccessTier.CONTRIBUTOR

    can_write = can_stage

    def can_validate(self) -> bool:
        """Validators and stewards promote and reject patterns and resolve conflicts."""
        return self.tier >= AccessTier.VALIDATOR

    def can_administer(self) -> bool:
        return self.tier >= AccessTier.STEWARD

    def require(self, tier: AccessTier, action: str) -> None:
        """Raise :class:`AccessDeniedError` unless this caller has at least ``tier``."""
        if self.tier < tier:
            raise AccessDeniedError(
                f"{action} needs the {tier.name.lower()} tier or higher; "
                f"agent {self.agent_id} is {self.tier.name.lower()}"
            )

    def require_self(self, agent_id: str, action: str, tier: AccessTier = AccessTier.CONTRIBUTOR) -> None:
        """Raise unless the caller has ``tier`` and acts as itself (stewards may act for anyone)."""
        self.require(tier, action)
        if agent_id != self.agent_id and self.tier < AccessTier.STEWARD:
            raise AccessDeniedError(
                f"agent {self.agent_id} cannot {action} as {agent_id}: only a steward acts for another agent"
            )

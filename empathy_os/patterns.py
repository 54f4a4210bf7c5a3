"""Staged patterns (discovered by agents, decided by validators) and conflict contexts."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from .codec import decode_json, ms_to_seconds, positive_seconds
from .exceptions import ConflictError, InvalidInputError
from .keys import validate_id
from .ops import Run, op_function, read
from .tiers import AccessTier

MAX_TEXT = 100_000


def _text(value, what: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidInputError(f"{what} is {len(value):,} characters; the limit is {limit:,}")
    return value


@dataclass
class StagedPattern:
    """A pattern an agent discovered, waiting for a validator's decision."""

    pattern_id: str
    agent_id: str
    pattern_type: str
    name: str
    description: str = ""
    confidence: float = 0.5
    code: str | None = None
    context: dict = field(default_factory=dict)
    staged_at: float | None = None
    interests: list = field(default_factory=list)

    def __post_init__(self):
        validate_id(self.pattern_id, "pattern_id")
        validate_id(self.agent_id, "agent_id")
        validate_id(self.pattern_type, "pattern_type")
        _text(self.name, "name", required=True, limit=200)
        _text(self.description, "description")
        if self.code is not None:
            _text(self.code, "code")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c <= 1.0:
            raise InvalidInputError(f"confidence must be a number from 0 to 1, got {c!r}")
        self.confidence = float(c)
        if not isinstance(self.context, dict):
            raise InvalidInputError(f"context must be a dict, got {type(self.context).__name__}")
        if not isinstance(self.interests, list):
            raise InvalidInputError(f"interests must be a list, got {type(self.interests).__name__}")

    @property
    def content_hash(self) -> str:
        """Fingerprint of what the pattern says (type, normalised code or description): equal for a
        rediscovery of the same pattern, whoever stages it and whatever it is named."""
        body = (self.code or "").strip() or self.description.strip()
        normal = " ".join(body.split())
        return hashlib.sha256(f"{self.pattern_type}\n{normal}".encode()).hexdigest()

    def to_dict(self) -> dict:
        """The fields as a dict (a shallow copy: ``context`` and ``interests`` are shared)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "StagedPattern":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@op_function
def stage_pattern(memory, credentials, pattern: StagedPattern) -> bool:
    """Stage ``pattern`` for validation. True if new, False if the owner updated its staging.

    Patterns staged longer ago than ``staged_pattern_retention_seconds`` are removed first (event
    ``pattern.expired``); a new pattern beyond ``staged_pattern_limit`` raises :class:`StagingFullError`.
    """
    credentials.require(AccessTier.CONTRIBUTOR, "stage a pattern")
    if not isinstance(pattern, StagedPattern):
        raise InvalidInputError(f"stage_pattern takes a StagedPattern, got {type(pattern).__name__}")
    pattern.__post_init__()  # fields may have been changed since construction
    credentials.require_self(pattern.agent_id, "stage a pattern")
    if pattern.staged_at is None:
        pattern.staged_at = time.time()
    data = pattern.to_dict()
    data["content_hash"] = pattern.content_hash
    team = memory.team(credentials.team_id)
    steward = "1" if credentials.tier >= AccessTier.STEWARD else ""
    config = memory.config
    return bool((yield Run("pattern_stage", team, (team.staged, team.staged_order),
                           (pattern.pattern_id, pattern.agent_id, memory.encode(data, "pattern"), steward,
                            config.staged_pattern_limit, config.staged_pattern_retention_seconds))))


@op_function
def get_staged_patterns(memory, credentials, limit: int = 1000) -> list[StagedPattern]:
    """Patterns awaiting validation, oldest first."""
    team = memory.team(credentials.team_id)
    ids = yield read("zrange", team.staged_order, 0, limit - 1)
    if not ids:
        return []
    raw = yield read("hmget", team.staged, ids)
    return [StagedPattern.from_dict(json.loads(r)) for r in raw if r is not None]


def get_staged_pattern(memory, credentials, pattern_id: str) -> StagedPattern | None:
    team = memory.team(credentials.team_id)
    raw = memory.read(memory.client.hget, team.staged, validate_id(pattern_id, "pattern_id"))
    return None if raw is None else StagedPattern.from_dict(json.loads(raw))


def _decide(memory, credentials, pattern_id, decision, note, action):
    credentials.require(AccessTier.VALIDATOR, action)
    validate_id(pattern_id, "pattern_id")
    team = memory.team(credentials.team_id)
    record = {"pattern_id": pattern_id, "decision": decision, "decided_by": credentials.agent_id,
              "decided_at": time.time(), "note": note}
    raw = memory.run("pattern_decide", team,
                     (team.staged, team.staged_order, team.decision(pattern_id), team.pattern_lock(pattern_id)),
                     (pattern_id, decision, memory.encode(record, "decision"), memory.config.decision_ttl))
    if isinstance(raw, list):  # another validator is reviewing it
        holder, remaining_ms = raw
        raise ReviewLockedError(ReviewLock(pattern_id, holder, time.time() + max(remaining_ms, 0) / 1000))
    return StagedPattern.from_dict(json.loads(raw))


def promote_pattern(memory, credentials, pattern_id: str, note: str = "") -> StagedPattern:
    """Take a staged pattern out of staging as promoted (validators only, exactly once).

    Returns the pattern, for the caller to write into its durable library. A second validator
    racing on the same pattern gets :class:`ConflictError`; while another validator holds its review
    lock, :class:`ReviewLockedError` (nothing changes). The decision releases the lock.
    """
    return _decide(memory, credentials, pattern_id, "promoted", _text(note, "note", limit=2000),
                   "promote a pattern")


def reject_pattern(memory, credentials, pattern_id: str, reason: str) -> StagedPattern:
    """Take a staged pattern out of staging as rejected, with a reason (validators only, exactly once)."""
    return _decide(memory, credentials, pattern_id, "rejected",
                   _text(reason, "reason", required=True, limit=2000), "reject a pattern")


def restore_staged_pattern(memory, credentials, pattern: StagedPattern) -> None:
    """Undo a decision: put ``pattern`` back into staging as it was (validators only).

    For a caller whose durable write of the decision failed after :func:`promote_pattern` or
    :func:`reject_pattern` took the pattern out of staging: nothing is lost.
    """
    credentials.require(AccessTier.VALIDATOR, "restore a staged pattern")
    team = memory.team(credentials.team_id)
    data = pattern.to_dict()
    data["content_hash"] = pattern.content_hash
    staged_ms = int((pattern.staged_at or time.time()) * 1000)
    memory.run("pattern_restore", team, (team.staged, team.staged_order, team.decision(pattern.pattern_id)),
               (pattern.pattern_id, memory.encode(data, "pattern"), staged_ms))


def get_decision(memory, credentials, pattern_id: str) -> dict | None:
    """The recorded decision on a pattern (while Redis remembers it), or None."""
    team = memory.team(credentials.team_id)
    return decode_json(memory.read(memory.client.get, team.decision(validate_id(pattern_id, "pattern_id"))))


# -- conflict contexts ------------------------------------------------------------------------------


@dataclass
class ConflictContext:
    """Agents disagree: their positions and interests, and (once a validator decides) the resolution."""

    conflict_id: str
    positions: dict
    interests: dict = field(default_factory=dict)
    batna: str = ""
    created_by: str = ""
    created_at: float | None = None
    resolved: bool = False
    resolution: object = None
    resolved_by: str | None = None
    resolved_at: float | None = None


def _conflict(fields: dict) -> ConflictContext:
    context = json.loads(fields["context"])
    return ConflictContext(
        conflict_id=fields["conflict_id"], positions=context["positions"], interests=context["interests"],
        batna=context["batna"], created_by=fields.get("created_by", ""),
        created_at=ms_to_seconds(fields.get("created_at")),
        resolved="resolved_by" in fields, resolution=decode_json(fields.get("resolution")),
        resolved_by=fields.get("resolved_by"), resolved_at=ms_to_seconds(fields.get("resolved_at")),
    )


def create_conflict_context(memory, credentials, conflict_id: str, positions: dict, *,
                            interests: dict | None = None, batna: str = "") -> ConflictContext:
    """Record a disagreement: ``positions`` maps each agent to what it holds."""
    credentials.require(AccessTier.CONTRIBUTOR, "create a conflict context")
    validate_id(conflict_id, "conflict id")
    if not isinstance(positions, dict) or not positions:
        raise InvalidInputError("positions must be a non-empty dict of agent id -> position")
    for agent in positions:
        validate_id(agent, "agent id in positions")
    interests = {} if interests is None else interests
    if not isinstance(interests, dict):
        raise InvalidInputError("interests must be a dict of agent id -> interests")
    body = memory.encode({"positions": positions, "interests": interests,
                          "batna": _text(batna, "batna", limit=10_000)}, "conflict context")
    team = memory.team(credentials.team_id)
    memory.run("conflict_create", team, (team.conflict(conflict_id),),
               (conflict_id, body, credentials.agent_id, memory.config.conflict_ttl))
    return get_conflict_context(memory, credentials, conflict_id)


def get_conflict_context(memory, credentials, conflict_id: str) -> ConflictContext | None:
    team = memory.team(credentials.team_id)
    fields = memory.read(memory.client.hgetall, team.conflict(validate_id(conflict_id, "conflict id")))
    return _conflict(fields) if fields else None


def resolve_conflict(memory, credentials, conflict_id: str, resolution) -> ConflictContext:
    """Record the resolution of a conflict (validators only, exactly once)."""
    credentials.require(AccessTier.VALIDATOR, "resolve a conflict")
    validate_id(conflict_id, "conflict id")
    team = memory.team(credentials.team_id)
    flat = memory.run("conflict_resolve", team, (team.conflict(conflict_id),),
                      (conflict_id, memory.encode(resolution, "resolution"), credentials.agent_id))
    return _conflict(dict(zip(flat[::2], flat[1::2])))


# -- review locks -----------------------------------------------------------------------------------
# The race being avoided: two validators reading the same staged pattern and both spending time on a
# decision only one of them can make. A validator who opens a pattern takes its review lock (SET NX PX
# semantics in ``pattern_lock.lua``, with the pattern.locked event in the same round trip); others see
# who holds it and are refused until it is released or expires. ``promote_pattern`` and
# ``reject_pattern`` check the lock in the decision's own script (another holder: ReviewLockedError,
# nothing changes) and release it; pages show the holders (:func:`get_review_locks`).

#: A review lock lasts this long unless its holder renews it (by taking it again) or releases it.
REVIEW_LOCK_SECONDS = 120


@dataclass(frozen=True)
class ReviewLock:
    """Who is reviewing a staged pattern, and until when (epoch seconds, this machine's clock)."""

    pattern_id: str
    holder: str
    expires_at: float


class ReviewLockedError(ConflictError):
    """Another validator holds the pattern's review lock; ``lock`` says who and until when."""

    def __init__(self, lock: ReviewLock):
        self.lock = lock
        super().__init__(f"pattern {lock.pattern_id} is being reviewed by {lock.holder}")


def _lock_args(memory, credentials, pattern_id):
    credentials.require(AccessTier.VALIDATOR, "lock a pattern for review")
    validate_id(pattern_id, "pattern_id")
    team = memory.team(credentials.team_id)
    return team, (team.pattern_lock(pattern_id), team.staged, team.decision(pattern_id))


def lock_pattern(memory, credentials, pattern_id: str, ttl: float = REVIEW_LOCK_SECONDS) -> ReviewLock:
    """Take the review lock of a staged pattern for ``ttl`` seconds, or renew it if the caller holds it.

    One round trip. Raises :class:`ReviewLockedError` when another validator holds it, and
    :class:`ConflictError` / :class:`NotFoundError` when the pattern is no longer staged.
    """
    ttl_ms = max(1, int(positive_seconds(ttl, "review lock ttl") * 1000))
    team, keys = _lock_args(memory, credentials, pattern_id)
    taken, holder, remaining_ms = memory.run("pattern_lock", team, keys,
                                             ("lock", pattern_id, credentials.agent_id, ttl_ms))
    lock = ReviewLock(pattern_id, holder, time.time() + max(remaining_ms, 0) / 1000)
    if not taken:
        raise ReviewLockedError(lock)
    return lock


def unlock_pattern(memory, credentials, pattern_id: str) -> bool:
    """Release the caller's review lock (one round trip). False if the caller did not hold it:
    only the holder releases; an expired lock needs no release."""
    team, keys = _lock_args(memory, credentials, pattern_id)
    return bool(memory.run("pattern_lock", team, keys, ("unlock", pattern_id, credentials.agent_id, 0)))


def get_review_locks(memory, credentials, pattern_ids) -> dict[str, ReviewLock]:
    """The live review locks of some of a team's patterns (one pipelined read), by pattern id."""
    ids = [validate_id(p, "pattern_id") for p in pattern_ids]
    if not ids:
        return {}
    team = memory.team(credentials.team_id)
    pipe = memory.client.pipeline(transaction=False)
    for pattern_id in ids:
        pipe.get(team.pattern_lock(pattern_id))
        pipe.pttl(team.pattern_lock(pattern_id))
    replies = memory.read(pipe.execute)
    now = time.time()
    locks = {}
    for pattern_id, holder, remaining_ms in zip(ids, replies[::2], replies[1::2]):
        if holder is not None and remaining_ms > 0:
            locks[pattern_id] = ReviewLock(pattern_id, holder, now + remaining_ms / 1000)
    return locks

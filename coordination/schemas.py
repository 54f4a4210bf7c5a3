"""Request and response bodies of the agent API. Names mirror the library's."""

from typing import Annotated, Any, Optional

from ninja import Field, Schema

from empathy_os.keys import ID_PATTERN

#: An id of the library (agent, task, type, session, pattern, key): documented in the OpenAPI schema.
Id = Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$", max_length=128,
                          description="1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit")]


class Error(Schema):
    error: str = Field(description="machine-readable code")
    detail: str = Field(description="what went wrong and what to fix")


class MemoryIn(Schema):
    value: Any = Field(description="any JSON value")
    ttl: Optional[float] = Field(None, description="seconds; default one hour")


class MemoryOut(Schema):
    key: str
    agent_id: str
    value: Any


class RegisterIn(Schema):
    capabilities: list[Id] = Field(default_factory=list, description="task types this agent can do")


class HeartbeatIn(Schema):
    lease_seconds: Optional[float] = None


class TaskIn(Schema):
    task_id: Id
    task_type: Id
    description: str = ""
    priority: int = 5
    context: dict[str, Any] = Field(default_factory=dict)
    max_attempts: Optional[int] = None


class TaskOut(Schema):
    task_id: str
    task_type: str
    description: str
    priority: int
    context: dict[str, Any]
    status: str
    assigned_to: Optional[str]
    attempts: int
    max_attempts: Optional[int]
    lease_expires_at: Optional[float]
    lease_token: str
    created_at: Optional[float]
    created_by: Optional[str]
    claimed_at: Optional[float]
    finished_at: Optional[float]
    result: Any
    reason: Optional[str]


class AddedOut(Schema):
    added: list[str]
    existing: list[str]


class ClaimIn(Schema):
    task_type: Optional[Id] = None
    lease_seconds: Optional[float] = None


class CompleteIn(Schema):
    result: Any = Field(default_factory=dict)
    lease_token: Optional[str] = None


class ClaimBatchIn(ClaimIn):
    n: int = Field(10, ge=1, le=1000, description="claim up to this many tasks (one round trip)")


class CompletionIn(CompleteIn):
    task_id: Id


class CompleteBatchIn(Schema):
    completions: list[CompletionIn] = Field(..., min_length=1, max_length=1000)


class CompletionOut(Schema):
    task_id: str
    status: str = Field(description="'completed', or 'error' (then error and detail say why)")
    credited: Optional[str] = None
    error: Optional[str] = None
    detail: Optional[str] = None


class CompleteBatchOut(Schema):
    completed: int
    results: list[CompletionOut]


class FailIn(Schema):
    reason: str
    retry: bool = False
    lease_token: Optional[str] = None


class LeaseIn(Schema):
    lease_seconds: Optional[float] = None
    lease_token: Optional[str] = None


class SignalIn(Schema):
    signal_type: Id
    data: Any = Field(default_factory=dict)
    target_agent: Optional[Id] = None


class SignalOut(Schema):
    id: str
    sender: Optional[str]
    signal_type: Optional[str]
    data: Any
    target: Optional[str]
    sent_at: Optional[float]
    seq: int


class SessionIn(Schema):
    session_id: Id
    purpose: str = ""


class SessionOut(Schema):
    session_id: str
    team_id: str
    purpose: str
    created_by: Optional[str]
    created_at: Optional[float]
    last_activity: Optional[float]
    participants: list[str]
    context_keys: list[str]


class ValueIn(Schema):
    value: Any


class ContextOut(Schema):
    key: str
    value: Any


class PatternIn(Schema):
    pattern_id: Id
    pattern_type: Id
    name: str
    description: str = ""
    confidence: float = 0.5
    code: Optional[str] = None
    context: dict[str, Any] = Field(default_factory=dict)


class StagedOut(Schema):
    pattern_id: str
    agent_id: str
    pattern_type: str
    name: str
    description: str
    confidence: float
    code: Optional[str]
    context: dict[str, Any]
    staged_at: Optional[float]
    rediscovery_of: Optional[str] = None


class PromoteIn(Schema):
    note: str = ""


class RejectIn(Schema):
    reason: str


class LibraryOut(Schema):
    pattern_id: str
    pattern_type: str
    name: str
    description: str
    code: str
    confidence: float
    context: dict[str, Any]
    discovered_by: str
    promoted_by: str
    promoted_at: Any
    reuse_count: int


class DecisionOut(Schema):
    pattern_id: str
    decision: str
    decided_by: str
    decided_at: Any
    note: str


class StateIn(Schema):
    state: dict[str, Any]


class StateOut(Schema):
    session_id: str
    state: dict[str, Any]

"""Team sessions: participants and shared context, created if absent, expiring when idle."""

from __future__ import annotations

import json

from .codec import ms_to_seconds
from .defaults import DEFAULT_TEAM
from .keys import validate_id
from .ops import Pipe, Run, op, op_function, read
from .patterns import _text
from .tiers import AccessTier, AgentCredentials


class TeamSession:
    """A shared workspace for agents on one piece of work.

    Constructing a ``TeamSession`` creates the session if it does not exist; with an id that exists
    it opens that session and never resets it. Every change refreshes the session's TTL
    (``session_ttl``). An observer's handle only reads: it creates nothing.
    """

    def __new__(cls, memory=None, *args, **kwargs):
        # A client of a remote site (empathy_os.client) hands over to its HTTP implementation.
        remote = getattr(memory, "remote_session", None)
        return super().__new__(remote if remote is not None and not issubclass(cls, remote) else cls)

    def __init__(self, memory, session_id: str, purpose: str = "", *, team_id: str = DEFAULT_TEAM,
                 credentials: AgentCredentials | None = None):
        self._identify(memory, session_id, purpose, team_id, credentials)
        self._keys = memory.team(team_id)
        self.created = False
        if self._opens:
            self.open()

    def _identify(self, memory, session_id: str, purpose: str, team_id: str,
                  credentials: AgentCredentials | None) -> None:
        """The memory, the session, its team and who acts (a steward "coordinator" unless told)."""
        self.memory = memory
        self.session_id = validate_id(session_id, "session id")
        self.purpose = _text(purpose, "purpose", limit=1000)
        self.team_id = validate_id(team_id, "team id")
        self.credentials = credentials or AgentCredentials("coordinator", AccessTier.STEWARD, team_id)

    #: Whether constructing the handle opens the session (the asyncio twin opens it with ``await open()``).
    _opens = True

    @op
    def open(self) -> bool:
        """Create the session if absent (an observer's handle creates nothing). True if created."""
        if self.credentials.can_stage():
            self.created = bool((yield self._run("open")))
        return self.created

    def _run(self, action: str, subject: str = "", value: str = "") -> Run:
        k, sid = self._keys, self.session_id
        return Run("session", k, (k.session(sid), k.session_agents(sid), k.session_context(sid), k.sessions),
                   (sid, self.memory.config.session_ttl, self.credentials.agent_id, self.purpose, action, subject,
                    value))

    @op
    def add_agent(self, agent_id: str) -> None:
        """Add a participant (an agent adds itself; a steward adds anyone)."""
        self.credentials.require_self(validate_id(agent_id, "agent id"), "join a session")
        yield self._run("join", agent_id)

    @op
    def remove_agent(self, agent_id: str) -> None:
        self.credentials.require_self(validate_id(agent_id, "agent id"), "leave a session")
        yield self._run("leave", agent_id)

    @op
    def share(self, key: str, value) -> None:
        """Share ``value`` (JSON data) under ``key`` with every participant."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "share session context")
        validate_id(key, "key")
        yield self._run("share", key, self.memory.encode(value, "shared context"))

    @op
    def get(self, key: str, default=None):
        raw = yield read("hget", self._keys.session_context(self.session_id), validate_id(key, "key"))
        return default if raw is None else json.loads(raw)

    @op
    def get_context(self) -> dict:
        raw = yield read("hgetall", self._keys.session_context(self.session_id))
        return {k: json.loads(v) for k, v in sorted(raw.items())}

    @op
    def get_info(self) -> dict:
        """``session_id``, ``purpose``, ``participants`` (sorted), ``context_keys``, times; {} if expired."""
        return (yield from get_session_info.op(self.memory, self.team_id, self.session_id))


@op_function
def get_session_info(memory, team_id: str, session_id: str) -> dict:
    """A session's info without joining or touching it; {} if it does not exist."""
    k = memory.team(team_id)
    validate_id(session_id, "session id")
    info, participants, keys = yield Pipe((("hgetall", (k.session(session_id),), {}),
                                           ("smembers", (k.session_agents(session_id),), {}),
                                           ("hkeys", (k.session_context(session_id),), {})))
    if not info:
        return {}
    return {
        "session_id": session_id,
        "team_id": team_id,
        "purpose": info.get("purpose", ""),
        "created_by": info.get("created_by"),
        "created_at": ms_to_seconds(info.get("created_at")),
        "last_activity": ms_to_seconds(info.get("last_activity")),
        "participants": sorted(participants),
        "context_keys": sorted(keys),
    }


def list_sessions(memory, team_id: str, limit: int = 100) -> list[dict]:
    """The team's live sessions, most recently active first."""
    ids = memory.read(memory.client.zrevrange, memory.team(team_id).sessions, 0, limit - 1)
    return [info for info in (get_session_info(memory, team_id, sid) for sid in ids) if info]

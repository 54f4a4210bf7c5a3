"""Every operation of the client, as a request description (:class:`~._http.Call`).

Names and arguments mirror :class:`~empathy_os.RedisShortTermMemory` (credentials first), so
``EmpathyOS`` uses a client as it uses a memory. The task and session operations that
``AgentCoordinator`` and ``TeamSession`` run as scripts on a memory are here under names of their
own (``claim``, ``complete``, ``session_open``...), used by :mod:`.remote`.

The credentials passed in only choose which token speaks (see :class:`Keyring`): who the caller is,
its team and its tier are the token's, decided on the server.
"""

from __future__ import annotations

from urllib.parse import quote

from ..coordinator import AgentTask
from ..exceptions import AccessDeniedError, EmpathyError
from ..patterns import ConflictContext, StagedPattern
from ..tiers import AgentCredentials
from ._http import CODES, Call


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _task(body: dict | None) -> AgentTask | None:
    """An ``AgentTask`` from the API's JSON (validated by the server; not again here)."""
    if body is None:
        return None
    task = AgentTask.__new__(AgentTask)
    task.__dict__.update({name: body.get(name) for name in AgentTask.__dataclass_fields__})
    task.context = task.context or {}
    return task


def _pattern(body: dict) -> StagedPattern:
    pattern = StagedPattern.from_dict(body)
    if body.get("rediscovery_of"):
        pattern.rediscovery_of = body["rediscovery_of"]
    return pattern


def _conflict_context(body: dict) -> ConflictContext:
    return ConflictContext(**{name: body.get(name) for name in ConflictContext.__dataclass_fields__})


def _completions(body: dict) -> list:
    out = []
    for r in body["results"]:
        if r["status"] == "completed":
            out.append(r["credited"])
        else:
            out.append(CODES.get(r.get("error"), EmpathyError)(r.get("detail") or r.get("error")))
    return out


def _drop_none(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not None}


class Identity(AgentCredentials):
    """What the server says a token stands for (``GET /me``)."""


class Keyring:
    """The client's tokens and who each stands for, so that several agents of one process (as in the
    chapter) each speak with their own token.

    A call made with credentials for agent ``A`` of team ``T`` uses the token of ``A`` in ``T``, else
    the token of ``A`` in any team (the team is the token's), else fails with ``AccessDeniedError``
    naming the tokens held. A call without credentials uses the first token.
    """

    def __init__(self, identities: list[tuple[str, AgentCredentials]]):
        if not identities:
            raise ValueError("give the client at least one agent token")
        self.identities = identities

    @property
    def default(self) -> tuple[str, AgentCredentials]:
        return self.identities[0]

    def token_for(self, credentials: AgentCredentials | None) -> str:
        if credentials is None:
            return self.default[0]
        same_agent = [(t, who) for t, who in self.identities if who.agent_id == credentials.agent_id]
        for token, who in same_agent:
            if who.team_id == credentials.team_id:
                return token
        if same_agent:
            return same_agent[0][0]
        held = ", ".join(f"{who.agent_id}@{who.team_id} ({who.tier})" for _, who in self.identities)
        raise AccessDeniedError(
            f"this client has no token for agent {credentials.agent_id} (team {credentials.team_id}); "
            f"it holds tokens for {held}: pass that agent's token to connect()")


class Operations:
    """Request builders. ``self.keyring`` picks the token of the credentials given."""

    keyring: Keyring

    def _call(self, credentials, method: str, path: str, **kwargs) -> Call:
        return Call(method, path, token=self.keyring.token_for(credentials), **kwargs)

    # -- who, health, stats ------------------------------------------------------------------------

    def whoami(self, credentials=None) -> Call:
        return self._call(credentials, "GET", "/me", parse=lambda b: Identity(b["agent_id"], b["tier"], b["team_id"]))

    def health(self) -> Call:
        return Call("GET", "/health", absent={503: None})

    def get_stats(self, credentials=None) -> Call:
        return self._call(credentials, "GET", "/stats")

    # -- working memory ----------------------------------------------------------------------------

    def stash(self, credentials, key: str, value, ttl: float | None = None) -> Call:
        return self._call(credentials, "PUT", f"/memory/{_seg(key)}", json={"value": value, "ttl": ttl},
                          parse=lambda b: None)

    def retrieve(self, credentials, key: str, agent_id: str | None = None) -> Call:
        return self._call(credentials, "GET", f"/memory/{_seg(key)}", params=_drop_none(agent_id=agent_id),
                          parse=lambda b: b["value"], absent={404: None})

    def forget(self, credentials, key: str) -> Call:
        return self._call(credentials, "DELETE", f"/memory/{_seg(key)}", parse=lambda b: True, absent={404: False})

    # -- signals -----------------------------------------------------------------------------------

    def send_signal(self, credentials, signal_type: str, data=None, target_agent: str | None = None) -> Call:
        return self._call(credentials, "POST", "/signals", parse=lambda b: b["id"],
                          json={"signal_type": signal_type, "data": {} if data is None else data,
                                "target_agent": target_agent})

    def receive_signals(self, credentials, signal_type: str | None = None, *, wait: float | None = None,
                        count: int | None = None) -> Call:
        return self._call(credentials, "GET", "/signals", wait=float(wait or 0),
                          params=_drop_none(type=signal_type, wait=wait or None))

    # -- patterns ----------------------------------------------------------------------------------

    def stage_pattern(self, credentials, pattern: StagedPattern) -> Call:
        body = {name: getattr(pattern, name) for name in
                ("pattern_id", "pattern_type", "name", "description", "confidence", "code", "context")}
        return self._call(credentials, "POST", "/patterns/staged", json=body, parse=lambda b: True,
                          absent={200: False})

    def get_staged_patterns(self, credentials, limit: int | None = None) -> Call:
        return self._call(credentials, "GET", "/patterns/staged", parse=lambda b: [_pattern(p) for p in b])

    def promote_pattern(self, credentials, pattern_id: str, note: str = "") -> Call:
        return self._call(credentials, "POST", f"/patterns/staged/{_seg(pattern_id)}/promote", json={"note": note})

    def reject_pattern(self, credentials, pattern_id: str, reason: str) -> Call:
        return self._call(credentials, "POST", f"/patterns/staged/{_seg(pattern_id)}/reject", json={"reason": reason})

    def search_library(self, credentials, q: str = "", pattern_type: str = "") -> Call:
        return self._call(credentials, "GET", "/patterns/library", params=_drop_none(q=q or None, type=pattern_type or None))

    # -- conflicts ---------------------------------------------------------------------------------

    def create_conflict_context(self, credentials, conflict_id: str, positions: dict, *,
                                interests: dict | None = None, batna: str = "") -> Call:
        return self._call(credentials, "POST", "/conflicts", parse=_conflict_context,
                          json={"conflict_id": conflict_id, "positions": positions, "interests": interests or {},
                                "batna": batna})

    def resolve_conflict(self, credentials, conflict_id: str, resolution) -> Call:
        return self._call(credentials, "POST", f"/conflicts/{_seg(conflict_id)}/resolve", parse=_conflict_context,
                          json={"resolution": resolution})

    # -- collaboration state -----------------------------------------------------------------------

    def persist_state(self, credentials, session_id: str, state: dict, ttl: float | None = None) -> Call:
        return self._call(credentials, "PUT", f"/state/{_seg(session_id)}", json={"state": state}, parse=lambda b: None)

    def restore_state(self, credentials, session_id: str) -> Call:
        return self._call(credentials, "GET", f"/state/{_seg(session_id)}", parse=lambda b: b["state"],
                          absent={404: None})

    # -- agents and tasks (AgentCoordinator over HTTP) ---------------------------------------------

    def register(self, credentials, agent_id: str, capabilities=None) -> Call:
        return self._call(credentials, "POST", "/agents/register", parse=lambda b: b["released"],
                          json={"agent_id": agent_id, "capabilities": list(capabilities or [])})

    def beat(self, credentials, agent_id: str, lease_seconds: float | None = None) -> Call:
        return self._call(credentials, "POST", "/agents/heartbeat", parse=lambda b: b["leases_renewed"],
                          json=_drop_none(agent_id=agent_id, lease_seconds=lease_seconds))

    def get_agents(self, credentials) -> Call:
        return self._call(credentials, "GET", "/agents")

    def add_tasks(self, credentials, tasks) -> Call:
        fields = ("task_id", "task_type", "description", "priority", "context", "max_attempts")
        body = [{name: getattr(t, name) for name in fields} for t in tasks]
        added = lambda b: [t.task_id not in set(b["existing"]) for t in tasks]  # noqa: E731
        return self._call(credentials, "POST", "/tasks", json=body, parse=added)

    def claim(self, credentials, agent_id: str, task_type: str | None = None, lease_seconds: float | None = None) -> Call:
        return self._call(credentials, "POST", "/tasks/claim", parse=_task, absent={204: None},
                          json=_drop_none(agent_id=agent_id, task_type=task_type, lease_seconds=lease_seconds))

    def claim_batch(self, credentials, agent_id: str, n: int, task_type: str | None = None,
                    lease_seconds: float | None = None) -> Call:
        return self._call(credentials, "POST", "/tasks/claim-batch", parse=lambda b: [_task(t) for t in b],
                          json=_drop_none(agent_id=agent_id, n=n, task_type=task_type, lease_seconds=lease_seconds))

    def complete_batch(self, credentials, completions, agent_id: str | None = None) -> Call:
        """``completions``: (task_id, result, lease_token) tuples; each answer is the agent credited or
        the library's exception for that task (returned, not raised, as ``complete_tasks`` does)."""
        body = [_drop_none(task_id=t, result={} if r is None else r, lease_token=tok) for t, r, tok in completions]
        return self._call(credentials, "POST", "/tasks/complete-batch", parse=_completions,
                          json=_drop_none(completions=body, agent_id=agent_id))

    def complete(self, credentials, task_id: str, result=None, agent_id: str | None = None,
                 lease_token: str | None = None) -> Call:
        return self._call(credentials, "POST", f"/tasks/{_seg(task_id)}/complete", parse=lambda b: b["agent_id"],
                          json=_drop_none(result={} if result is None else result, agent_id=agent_id,
                                          lease_token=lease_token))

    def fail(self, credentials, task_id: str, reason: str, agent_id: str | None = None, retry: bool = False,
             lease_token: str | None = None) -> Call:
        return self._call(credentials, "POST", f"/tasks/{_seg(task_id)}/fail", parse=lambda b: b["status"],
                          json=_drop_none(reason=reason, agent_id=agent_id, retry=retry, lease_token=lease_token))

    def extend(self, credentials, task_id: str, agent_id: str | None = None, lease_seconds: float | None = None,
               lease_token: str | None = None) -> Call:
        return self._call(credentials, "POST", f"/tasks/{_seg(task_id)}/heartbeat",
                          parse=lambda b: b["lease_expires_at"],
                          json=_drop_none(agent_id=agent_id, lease_seconds=lease_seconds, lease_token=lease_token))

    def task_history(self, credentials, task_id: str) -> Call:
        return self._call(credentials, "GET", f"/tasks/{_seg(task_id)}/history")

    def get_task(self, credentials, task_id: str) -> Call:
        return self._call(credentials, "GET", f"/tasks/{_seg(task_id)}", parse=_task, absent={404: None})

    def list_tasks(self, credentials, status: str = "pending", limit: int = 100) -> Call:
        return self._call(credentials, "GET", "/tasks", params={"status": status, "limit": limit},
                          parse=lambda b: [_task(t) for t in b])

    def aggregate_results(self, credentials) -> Call:
        return self._call(credentials, "GET", "/results")

    # -- sessions (TeamSession over HTTP) ----------------------------------------------------------

    def session_open(self, credentials, session_id: str, purpose: str = "") -> Call:
        return self._call(credentials, "POST", "/sessions", json={"session_id": session_id, "purpose": purpose},
                          parse=lambda b: False, absent={201: True})

    def session_join(self, credentials, session_id: str, agent_id: str) -> Call:
        return self._call(credentials, "POST", f"/sessions/{_seg(session_id)}/join", json={"agent_id": agent_id})

    def session_leave(self, credentials, session_id: str, agent_id: str) -> Call:
        return self._call(credentials, "POST", f"/sessions/{_seg(session_id)}/leave", json={"agent_id": agent_id})

    def session_share(self, credentials, session_id: str, key: str, value) -> Call:
        return self._call(credentials, "PUT", f"/sessions/{_seg(session_id)}/context/{_seg(key)}",
                          json={"value": value}, parse=lambda b: None)

    def session_get(self, credentials, session_id: str, key: str, default=None) -> Call:
        return self._call(credentials, "GET", f"/sessions/{_seg(session_id)}/context/{_seg(key)}",
                          parse=lambda b: b["value"], absent={404: default})

    def session_context(self, credentials, session_id: str) -> Call:
        return self._call(credentials, "GET", f"/sessions/{_seg(session_id)}/context")

    def session_info(self, credentials, session_id: str) -> Call:
        return self._call(credentials, "GET", f"/sessions/{_seg(session_id)}", absent={404: {}})


#: The operations the clients expose (everything public above).
OPERATIONS = tuple(name for name in vars(Operations) if not name.startswith("_") and name != "keyring")

__all__ = ["Identity", "Keyring", "OPERATIONS", "Operations"]

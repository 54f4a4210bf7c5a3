"""``AgentCoordinator`` and ``TeamSession`` over HTTP.

Every public method of the two classes is overridden here (their operations are generators of Redis
requests, ``empathy_os.ops``, which a client must never run: it has no Redis, only the API).

``AgentCoordinator(client, ...)`` and ``TeamSession(client, ...)`` build these subclasses instead
(the two classes' constructors hand over when the memory is a client), so chapter code runs
unchanged. Each method is the same library method, run on the server by the site's API under the
token of the coordinator's (or session's) credentials: the rules are the library's, applied there.
"""

from __future__ import annotations

from ..coordinator import AgentCoordinator, AgentTask
from ..defaults import DEFAULT_TEAM
from ..exceptions import InvalidInputError
from ..sessions import TeamSession
from ..tiers import AgentCredentials


class RemoteCoordinator(AgentCoordinator):
    """An ``AgentCoordinator`` whose every operation is a call to the site."""

    def __init__(self, memory, team_id: str = DEFAULT_TEAM, credentials: AgentCredentials | None = None,
                 *, lease_seconds: float | None = None):
        self._identify(memory, team_id, credentials)
        self.lease_seconds = lease_seconds  # None: the site's default lease

    def _lease(self, lease_seconds):
        return self.lease_seconds if lease_seconds is None else lease_seconds

    def register_agent(self, agent_id: str, capabilities=None) -> int:
        return self.memory.register(self._credentials, agent_id, capabilities)

    def heartbeat(self, agent_id: str, lease_seconds: float | None = None) -> int:
        return self.memory.beat(self._credentials, agent_id, self._lease(lease_seconds))

    def get_agents(self) -> list[dict]:
        return self.memory.get_agents(self._credentials)

    def get_active_agents(self) -> list[str]:
        return [a["agent_id"] for a in self.get_agents() if a["active"]]

    def add_task(self, task: AgentTask) -> bool:
        return self.add_tasks([task])[0]

    def add_tasks(self, tasks) -> list[bool]:
        tasks = list(tasks)
        for task in tasks:
            if not isinstance(task, AgentTask):
                raise InvalidInputError(f"add_task takes AgentTask objects, got {type(task).__name__}")
        return self.memory.add_tasks(self._credentials, tasks) if tasks else []

    def claim_task(self, agent_id: str, task_type: str | None = None, *,
                   lease_seconds: float | None = None) -> AgentTask | None:
        return self.memory.claim(self._credentials, agent_id, task_type, self._lease(lease_seconds))

    def claim_tasks(self, agent_id: str, n: int, task_type: str | None = None, *,
                    lease_seconds: float | None = None) -> list[AgentTask]:
        return self.memory.claim_batch(self._credentials, agent_id, n, task_type, self._lease(lease_seconds))

    def complete_tasks(self, completions, agent_id: str | None = None) -> list:
        items = []
        for c in completions:
            if isinstance(c, AgentTask):
                items.append((c.task_id, None, c.lease_token))
            else:
                task_id, result, *token = c
                items.append((task_id, result, token[0] if token else None))
        return self.memory.complete_batch(self._credentials, items, agent_id)

    def complete_task(self, task_id: str, result=None, agent_id: str | None = None, *,
                      lease_token: str | None = None) -> str:
        return self.memory.complete(self._credentials, task_id, result, agent_id, lease_token)

    def fail_task(self, task_id: str, reason: str, agent_id: str | None = None, *,
                  retry: bool = False, lease_token: str | None = None) -> str:
        return self.memory.fail(self._credentials, task_id, reason, agent_id, retry, lease_token)

    def extend_lease(self, task_id: str, agent_id: str | None = None, *, lease_seconds: float | None = None,
                     lease_token: str | None = None) -> float:
        return self.memory.extend(self._credentials, task_id, agent_id, self._lease(lease_seconds), lease_token)

    def get_task_history(self, task_id: str) -> list[dict]:
        return self.memory.task_history(self._credentials, task_id)

    def get_task(self, task_id: str) -> AgentTask | None:
        return self.memory.get_task(self._credentials, task_id)

    def list_tasks(self, status: str = "pending", limit: int = 100) -> list[AgentTask]:
        return self.memory.list_tasks(self._credentials, status, limit)

    def aggregate_results(self) -> dict:
        return self.memory.aggregate_results(self._credentials)

    def _not_over_http(self, *args, **kwargs):
        raise NotImplementedError("not offered by the HTTP API: use the library on Redis for this")

    count_tasks = reap_expired_leases = _not_over_http
    # send_signal, broadcast, receive_signals: inherited (they call the memory's, i.e. the client's).


class RemoteSession(TeamSession):
    """A ``TeamSession`` whose every operation is a call to the site."""

    def __init__(self, memory, session_id: str, purpose: str = "", *, team_id: str = DEFAULT_TEAM,
                 credentials: AgentCredentials | None = None):
        self._identify(memory, session_id, purpose, team_id, credentials)
        self.created = False
        self.open()

    def open(self) -> bool:
        if self.credentials.can_stage():
            self.created = self.memory.session_open(self.credentials, self.session_id, self.purpose)
        return self.created

    def add_agent(self, agent_id: str) -> None:
        self.memory.session_join(self.credentials, self.session_id, agent_id)

    def remove_agent(self, agent_id: str) -> None:
        self.memory.session_leave(self.credentials, self.session_id, agent_id)

    def share(self, key: str, value) -> None:
        self.memory.session_share(self.credentials, self.session_id, key, value)

    def get(self, key: str, default=None):
        return self.memory.session_get(self.credentials, self.session_id, key, default)

    def get_context(self) -> dict:
        return self.memory.session_context(self.credentials, self.session_id)

    def get_info(self) -> dict:
        return self.memory.session_info(self.credentials, self.session_id)

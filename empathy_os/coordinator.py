"""Task queue with atomic claims and leases, the agent registry, and result aggregation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .codec import decode_json, ms_to_seconds, positive_seconds
from .defaults import DEFAULT_TEAM, MAX_BATCH, MAX_PRIORITY, MIN_PRIORITY, REAP_BATCH
from .exceptions import InvalidInputError
from .keys import validate_id
from .ops import Pipe, Run, op, read
from .patterns import _text
from .scripts import error_from_reply
from .tiers import AccessTier, AgentCredentials

TASK_STATUSES = ("pending", "in_progress", "completed", "failed")


@dataclass
class AgentTask:
    """A unit of work. Only ``task_id`` and ``task_type`` are required to add one; the other
    fields after ``context`` are filled in by the coordinator."""

    task_id: str
    task_type: str
    description: str = ""
    priority: int = 5
    context: dict = field(default_factory=dict)
    max_attempts: int | None = None
    status: str = "pending"
    assigned_to: str | None = None
    attempts: int = 0
    lease_expires_at: float | None = None
    created_at: float | None = None
    created_by: str | None = None
    claimed_at: float | None = None
    finished_at: float | None = None
    result: object = None
    reason: str | None = None

    def __post_init__(self):
        validate_id(self.task_id, "task_id")
        validate_id(self.task_type, "task_type")
        _text(self.description, "description", limit=10_000)
        p = self.priority
        if isinstance(p, bool) or not isinstance(p, int) or not MIN_PRIORITY <= p <= MAX_PRIORITY:
            raise InvalidInputError(f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}, got {p!r}")
        if not isinstance(self.context, dict):
            raise InvalidInputError(f"context must be a dict, got {type(self.context).__name__}")
        m = self.max_attempts
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 100):
            raise InvalidInputError(f"max_attempts must be an integer from 1 to 100, got {m!r}")

    @property
    def lease_token(self) -> str:
        """Fencing token of the current claim: pass it to complete/fail/extend to be sure the task
        was not claimed again after your lease lapsed."""
        return str(self.attempts)

    def to_dict(self) -> dict:
        """The fields as a dict (a shallow copy: ``context`` and ``result`` are shared)."""
        return dict(self.__dict__)

    @classmethod
    def from_hash(cls, h: dict) -> "AgentTask":
        """Build a task from its Redis hash (validated when it was added, so not again here)."""
        task = cls.__new__(cls)
        task.__dict__.update(
            task_id=h["task_id"], task_type=h["task_type"], description=h.get("description", ""),
            priority=int(h.get("priority", 5)), context=decode_json(h.get("context")) or {},
            max_attempts=int(h["max_attempts"]) if h.get("max_attempts") else None,
            status=h.get("status", "pending"), assigned_to=h.get("holder") or None,
            attempts=int(h.get("attempts", 0)), lease_expires_at=ms_to_seconds(h.get("lease_deadline")),
            created_at=ms_to_seconds(h.get("created_at")), created_by=h.get("created_by"),
            claimed_at=ms_to_seconds(h.get("claimed_at")), finished_at=ms_to_seconds(h.get("finished_at")),
            result=decode_json(h.get("result")), reason=h.get("reason") or None,
        )
        return task


def task_history(h: dict, old_log=()) -> list[dict]:
    """A task's lease history, oldest first, ``at`` in seconds: the entries of the list
    ``task:<id>:log`` (JSON), where tasks added before the history moved into the hash keep theirs
    (``old_log``), then those in the hash ``h`` (fields ``log:<n>``, ``event|at|agent|attempt|reason``:
    see ``lua/_tasks.lua``)."""
    entries = []
    for raw in old_log:
        e = json.loads(raw)
        e["at"] = e["at"] / 1000
        entries.append(e)
    for _, raw in sorted((int(name[4:]), raw) for name, raw in h.items() if name.startswith("log:")):
        event, at, agent, attempt, reason = raw.split("|", 4)
        e = {"event": event}
        if agent:
            e["agent"] = agent
        if attempt:
            e["attempt"] = int(attempt)
        if reason:
            e["reason"] = reason
        e["at"] = int(at) / 1000
        entries.append(e)
    return entries


def _flat_to_dict(flat) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def _batch_size(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BATCH:
        raise InvalidInputError(f"{what} must be an integer from 1 to {MAX_BATCH}, got {n!r}")
    return n


def _completion(item) -> tuple:
    """``(task_id, result, lease_token)`` from a tuple of two or three, or a claimed AgentTask."""
    if isinstance(item, AgentTask):
        return item.task_id, None, item.lease_token
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return (item[0], item[1], item[2] if len(item) == 3 else None)
    raise InvalidInputError(f"a completion is (task_id, result) or (task_id, result, lease_token), got {item!r}")


class AgentCoordinator:
    """Coordinates a team of agents: registry, task queue, results, team signals.

    Built with no ``credentials`` it acts as the team's steward (agent id ``coordinator``), which is
    what the chapter does. Give it an agent's credentials to act as that agent: the HTTP API does.
    """

    def __new__(cls, memory=None, *args, **kwargs):
        # A client of a remote site (empathy_os.client) hands over to its HTTP implementation.
        remote = getattr(memory, "remote_coordinator", None)
        return super().__new__(remote if remote is not None and not issubclass(cls, remote) else cls)

    def __init__(self, memory, team_id: str = DEFAULT_TEAM, credentials: AgentCredentials | None = None,
                 *, lease_seconds: float | None = None):
        self._identify(memory, team_id, credentials)
        self.lease_seconds = positive_seconds(lease_seconds or memory.config.task_lease_seconds, "lease_seconds")
        self._keys = memory.team(team_id)

    def _identify(self, memory, team_id: str, credentials: AgentCredentials | None) -> None:
        """The memory, the team and who acts (a steward "coordinator" of the team unless told)."""
        self.memory = memory
        self.team_id = validate_id(team_id, "team id")
        if credentials is None:
            credentials = AgentCredentials("coordinator", AccessTier.STEWARD, team_id)
        elif credentials.team_id != team_id:
            raise InvalidInputError(f"credentials are for team {credentials.team_id}, not {team_id}")
        self._credentials = credentials

    @property
    def credentials(self) -> AgentCredentials:
        return self._credentials

    def _task_args(self):
        c = self.memory.config
        return (c.finished_task_retention_seconds, c.finished_task_retention_count, REAP_BATCH)

    def _lease_ms(self, lease_seconds) -> int:
        seconds = self.lease_seconds if lease_seconds is None else positive_seconds(lease_seconds, "lease_seconds")
        return int(seconds * 1000)

    # -- agents ---------------------------------------------------------------------------------

    @op
    def register_agent(self, agent_id: str, capabilities=None) -> int:
        """Register an agent and the task types it can do (what ``claim_task`` without a type uses).

        A registration is a new incarnation of the agent (a process registers when it starts): leases
        still held under its id are from a process that is gone, and go back to the queue (an attempt
        used). Returns how many were released; register once per process, not to update capabilities
        while holding tasks.
        """
        validate_id(agent_id, "agent id")
        self._credentials.require_self(agent_id, "register agent")
        capabilities = list(capabilities or [])
        for cap in capabilities:
            validate_id(cap, "capability")
        k = self._keys
        record = json.dumps({"capabilities": capabilities})
        return (yield Run("register_agent", k, (k.agents, k.agents_seen), (*self._task_args(), agent_id, record)))

    @op
    def heartbeat(self, agent_id: str, lease_seconds: float | None = None) -> int:
        """Mark the agent alive and renew every lease it holds. Returns how many were renewed."""
        validate_id(agent_id, "agent id")
        self._credentials.require_self(agent_id, "heartbeat")
        k = self._keys
        return (yield Run("heartbeat", k, (k.agents_seen, k.agent_leases(agent_id), k.leased),
                          (agent_id, self._lease_ms(lease_seconds))))

    @op
    def get_agents(self) -> list[dict]:
        """Every registered agent: ``agent_id``, ``capabilities``, ``last_seen`` (seconds), ``active``."""
        k = self._keys
        records, seen = yield Pipe((("hgetall", (k.agents,), {}), ("zrange", (k.agents_seen, 0, -1), {"withscores": True})))
        seen = dict(seen)
        horizon = time.time() - self.memory.config.agent_active_seconds
        agents = []
        for agent_id in sorted(records):
            last = seen.get(agent_id)
            last = last / 1000 if last is not None else None
            agents.append({"agent_id": agent_id, **json.loads(records[agent_id]), "last_seen": last,
                           "active": last is not None and last >= horizon})
        return agents

    @op
    def get_active_agents(self) -> list[str]:
        """Ids of registered agents seen within ``agent_active_seconds``, sorted."""
        return [a["agent_id"] for a in (yield from AgentCoordinator.get_agents.op(self)) if a["active"]]

    # -- tasks ----------------------------------------------------------------------------------

    @op
    def add_task(self, task: AgentTask) -> bool:
        """Queue a task. False (and nothing changed) if a task with this id already exists."""
        return (yield from AgentCoordinator.add_tasks.op(self, [task]))[0]

    @op
    def add_tasks(self, tasks) -> list[bool]:
        """Queue several tasks in one round trip; one flag per task (False: the id existed)."""
        self._credentials.require(AccessTier.CONTRIBUTOR, "add a task")
        tasks = list(tasks)
        if not tasks:
            return []
        args = [self._credentials.agent_id]
        seen = set()
        default_attempts = self.memory.config.task_max_attempts
        for task in tasks:
            if not isinstance(task, AgentTask):
                raise InvalidInputError(f"add_task takes AgentTask objects, got {type(task).__name__}")
            task.__post_init__()
            if task.task_id in seen:
                raise InvalidInputError(f"task_id {task.task_id} appears twice in one batch")
            seen.add(task.task_id)
            args += [task.task_id, task.task_type, task.description, task.priority,
                     self.memory.encode(task.context, "task context"), task.max_attempts or default_attempts]
        k = self._keys
        flags = yield Run("task_add", k, (), (*self._task_args(), *args))
        return [bool(f) for f in flags]

    @op
    def claim_task(self, agent_id: str, task_type: str | None = None, *,
                   lease_seconds: float | None = None) -> AgentTask | None:
        """Atomically claim the best pending task for ``agent_id``, or None if there is none.

        With ``task_type`` only that type is considered; without it, the agent's registered
        capabilities. The claim is a lease: renew it with :meth:`heartbeat` or :meth:`extend_lease`,
        or it lapses and the task returns to the queue (up to ``max_attempts`` claims).
        """
        validate_id(agent_id, "agent id")
        if task_type is not None:
            validate_id(task_type, "task_type")
        self._credentials.require_self(agent_id, "claim a task")
        k = self._keys
        flat = yield Run("task_claim", k, (k.agents, k.agents_seen),
                         (*self._task_args(), agent_id, self._lease_ms(lease_seconds), task_type or "", ""))
        return AgentTask.from_hash(_flat_to_dict(flat)) if flat else None

    @op
    def claim_tasks(self, agent_id: str, n: int, task_type: str | None = None, *,
                    lease_seconds: float | None = None) -> list[AgentTask]:
        """Claim up to ``n`` tasks for ``agent_id`` in one round trip (one script): the ``n`` best
        pending tasks, in claim order, each with its own lease, exactly as ``n`` calls of
        :meth:`claim_task` in a row would claim them. Fewer (or none) when fewer are pending."""
        validate_id(agent_id, "agent id")
        if task_type is not None:
            validate_id(task_type, "task_type")
        _batch_size(n, "n")
        self._credentials.require_self(agent_id, "claim a task")
        k = self._keys
        flats = yield Run("task_claim", k, (k.agents, k.agents_seen),
                          (*self._task_args(), agent_id, self._lease_ms(lease_seconds), task_type or "", n))
        return [AgentTask.from_hash(_flat_to_dict(flat)) for flat in flats]

    def _holder_args(self, task_id, agent_id, lease_token):
        validate_id(task_id, "task_id")
        if agent_id is None:
            # Without an agent id the caller acts for whoever holds the task: its own claims,
            # or any claim when it is the team's steward.
            self._credentials.require(AccessTier.CONTRIBUTOR, "act on a task")
            agent_id = "" if self._credentials.can_administer() else self._credentials.agent_id
        else:
            validate_id(agent_id, "agent id")
            self._credentials.require_self(agent_id, "act on a task")
        token = "" if lease_token is None else str(lease_token)
        return self._task_args(), task_id, agent_id, token

    def _fence_args(self, task_id, agent_id, lease_token):
        task_args, task_id, agent_id, token = self._holder_args(task_id, agent_id, lease_token)
        return (*task_args, task_id, agent_id, token)

    @op
    def complete_task(self, task_id: str, result=None, agent_id: str | None = None, *,
                      lease_token: str | None = None) -> str:
        """Complete a task with its result. Only the current lease holder can, exactly once.

        Raises :class:`LeaseError` if the caller does not hold the task or its lease expired,
        :class:`ConflictError` if it is already finished. Returns the agent credited.
        """
        task_args, task_id, agent_id, token = self._holder_args(task_id, agent_id, lease_token)
        payload = self.memory.encode({} if result is None else result, "result")
        return (yield Run("task_complete", self._keys, (), (*task_args, agent_id, "", task_id, token, payload)))

    @op
    def complete_tasks(self, completions, agent_id: str | None = None) -> list:
        """Complete several tasks in one round trip (one script). ``completions`` holds
        ``(task_id, result)`` or ``(task_id, result, lease_token)`` tuples (or claimed
        :class:`AgentTask` objects, completed with no result under their own lease token).

        Each task is checked as :meth:`complete_task` checks it (holder, lease, exactly once) and
        completed on its own: returns, in order, the agent credited for each, or the exception that
        ``complete_task`` would have raised for it (returned, not raised, so the others still count).
        """
        items = [_completion(c) for c in completions]
        _batch_size(len(items), "the number of completions")
        if len({task_id for task_id, _, _ in items}) != len(items):
            raise InvalidInputError("a task appears twice in one batch of completions")
        args = None
        flat = []
        for task_id, result, token in items:
            args = self._holder_args(task_id, agent_id, token)
            flat += [task_id, args[3], self.memory.encode({} if result is None else result, "result")]
        replies = yield Run("task_complete", self._keys, (), (*args[0], args[2], "*", *flat))
        return [error_from_reply(r[1:]) if r.startswith("!") else r for r in replies]

    @op
    def fail_task(self, task_id: str, reason: str, agent_id: str | None = None, *,
                  retry: bool = False, lease_token: str | None = None) -> str:
        """The holder gives up: the task fails with ``reason`` (or, with ``retry``, returns to the
        queue while attempts remain). Returns the new status."""
        args = self._fence_args(task_id, agent_id, lease_token)
        reason = _text(reason, "reason", required=True, limit=2000)
        return (yield Run("task_fail", self._keys, (), (*args, reason, "1" if retry else "")))

    @op
    def extend_lease(self, task_id: str, agent_id: str | None = None, *, lease_seconds: float | None = None,
                     lease_token: str | None = None) -> float:
        """Renew the lease on one task. Returns the new expiry (seconds since the epoch)."""
        args = self._fence_args(task_id, agent_id, lease_token)
        return (yield Run("task_extend", self._keys, (), (*args, self._lease_ms(lease_seconds)))) / 1000

    @op
    def reap_expired_leases(self) -> int:
        """Return expired leases to the queue (claims also do this). Returns how many were handled."""
        return (yield Run("task_reap", self._keys, (), self._task_args()))

    @op
    def get_task(self, task_id: str) -> AgentTask | None:
        h = yield read("hgetall", self._keys.task(validate_id(task_id, "task_id")))
        return AgentTask.from_hash(h) if h else None

    @op
    def get_task_history(self, task_id: str) -> list[dict]:
        """The task's lease history: added, claimed, requeued, completed/failed, with times and agents."""
        k = self._keys
        validate_id(task_id, "task_id")
        h, old = yield Pipe((("hgetall", (k.task(task_id),), {}), ("lrange", (k.task_log(task_id), 0, -1), {})))
        return task_history(h, old)

    @op
    def list_tasks(self, status: str = "pending", limit: int = 100) -> list[AgentTask]:
        """Tasks in one status: pending in claim order, in progress by lease expiry, finished newest first."""
        if status not in TASK_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(TASK_STATUSES)}, got {status!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInputError(f"limit must be an integer from 1 to 10000, got {limit!r}")
        k = self._keys
        index = {"pending": k.pending, "in_progress": k.leased, "completed": k.completed, "failed": k.failed}[status]
        ids = yield read("zrevrange" if status in ("completed", "failed") else "zrange", index, 0, limit - 1)
        if not ids:
            return []
        hashes = yield Pipe(tuple(("hgetall", (k.task(task_id),), {}) for task_id in ids))
        return [AgentTask.from_hash(h) for h in hashes if h]

    @op
    def count_tasks(self) -> dict:
        """How many tasks are in each status (one pipelined read)."""
        k = self._keys
        counts = yield Pipe(tuple(("zcard", (key,), {}) for key in (k.pending, k.leased, k.completed, k.failed)))
        return dict(zip(TASK_STATUSES, counts))

    @op
    def aggregate_results(self) -> dict:
        """Exact totals from counters updated in the same step as each completion.

        ``total_completed``, ``by_agent``, ``by_type``, ``total_failed``, ``failed_by_type``,
        ``average_duration_ms`` (claim to completion).
        """
        counters = yield read("hgetall", self._keys.results)
        by_agent, by_type, failed_by_type = {}, {}, {}
        for name, value in counters.items():
            kind, _, key = name.partition(":")
            if kind == "agent":
                by_agent[key] = int(value)
            elif kind == "type":
                by_type[key] = int(value)
            elif kind == "failed_type":
                failed_by_type[key] = int(value)
        total = int(counters.get("total_completed", 0))
        duration = int(counters.get("duration_ms", 0))
        return {
            "total_completed": total,
            "by_agent": dict(sorted(by_agent.items())),
            "by_type": dict(sorted(by_type.items())),
            "total_failed": int(counters.get("total_failed", 0)),
            "failed_by_type": dict(sorted(failed_by_type.items())),
            "average_duration_ms": round(duration / total, 1) if total else None,
        }

    # -- signals --------------------------------------------------------------------------------

    def send_signal(self, signal_type: str, data=None, target_agent: str | None = None) -> str:
        return self.memory.send_signal(self._credentials, signal_type, data, target_agent)

    def broadcast(self, signal_type: str, data=None) -> str:
        """Send a signal to every agent of the team (the coordinator included)."""
        return self.memory.send_signal(self._credentials, signal_type, data, None)

    def receive_signals(self, signal_type: str | None = None, *, wait: float | None = None) -> list[dict]:
        return self.memory.receive_signals(self._credentials, signal_type, wait=wait)

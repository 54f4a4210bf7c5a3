"""Simulated agent teams at work, so the dashboards have something to show.

``review_team``: a lead (``lead_reviewer``) opens pull-request reviews (a team session with shared
context, one task per review type and file) and security, performance and style reviewers claim,
work on and complete them. ``platform_team``: a lead and two agents with overlapping capabilities
run deployment checks and capacity plans. Everything goes through the library, like a real agent:

* reviewers register, heartbeat, claim with a lease, complete with realistic results, and tell the
  lead (a targeted ``analysis_complete`` signal); critical findings are broadcast;
* now and then a task fails (``fail_task`` with a reason, sometimes retried), and now and then an
  agent "crashes" mid-lease: it falls silent, its lease lapses, and the task returns to the queue
  (the lead's reaper pass) until the restarted agent claims it again;
* reviewers consult the pattern library before staging a pattern they discovered (every look-up
  counts towards the reuse rate), stage the ones the library lacks (some with code, one with
  ``<script>`` in it to show that the review queue escapes it), and occasionally skip the look-up
  and stage a rediscovery of a library pattern;
* the lead keeps the board moving: a new review when the queue runs dry, a summary in the session
  when a review is done.

Each actor's ``step()`` takes one action and says how long to wait before the next (seconds at
``speed`` 1). :func:`run_demo` runs every actor in a thread of its own until a stop event is set
(the library is blocking; in mock mode everything must live in the server's one process);
:meth:`Demo.process_one` steps every actor once, for tests. The tasks, results and patterns they
work with are in ``coordination.demo_work``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace

from django.db import DatabaseError, close_old_connections, connection

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    ConflictError,
    EmpathyError,
    MemoryUnavailableError,
    RedisShortTermMemory,
    StagingFullError,
    TeamSession,
    get_session_info,
)
from patterns import library
from patterns.models import LibraryPattern

from .demo_work import (
    FAILURE_REASONS,
    PATTERNS,
    PREFIX,
    WORK,
    context_for,
    describe,
    priority,
    result_for,
    staged_pattern,
)

log = logging.getLogger("coordination.demo")

#: Broadcast by a lead when it queued work; idle agents wake up on it.
WORK_SIGNAL = "work_available"
#: The demo's agents stage no more than this per team (their memory's ``staged_pattern_limit``: the
#: library refuses more with StagingFullError; validators decide, then agents stage again).
MAX_STAGED = 25
#: Chances, per finished task (a rediscovery: per discovery).
FAIL_CHANCE, CRASH_CHANCE, STAGE_CHANCE, REDISCOVERY_CHANCE = 0.07, 0.03, 0.15, 0.15
#: Seconds between heartbeats, and an agent's lease, at speed 1.
HEARTBEAT_EVERY, LEASE_SECONDS = 5.0, 12.0
#: The shortest lease at any speed (real seconds): longer than a step takes.
MIN_LEASE_SECONDS = 3.0
#: The validator that seeds each team's library with its first patterns.
SEED_VALIDATOR = "senior_architect"


@dataclass(frozen=True)
class TeamPlan:
    team_id: str
    lead: str
    agents: dict  # agent id -> capabilities
    reviews_open: int = 2  # reviews the lead keeps open at most


TEAMS = (
    TeamPlan("review_team", "lead_reviewer", {"security_agent": ["security_review"],
                                              "performance_agent": ["performance_review"],
                                              "style_agent": ["style_review"]}),
    TeamPlan("platform_team", "platform_lead", {"deploy_agent": ["deploy_check"],
                                                "infra_agent": ["capacity_planning", "deploy_check"]},
             reviews_open=1),
)


def short_id() -> str:
    return uuid.uuid4().hex[:8]



class Actor:
    """One simulated agent of one team, acting through the library with its own credentials."""

    def __init__(self, memory, team_id: str, agent_id: str, tier: AccessTier, rng: random.Random, speed: float):
        self.memory = memory
        self.team_id = team_id
        self.agent_id = agent_id
        self.rng = rng
        self.speed = speed
        self.credentials = AgentCredentials(agent_id, tier, team_id)
        self.coordinator = AgentCoordinator(memory, team_id, self.credentials)
        self.last_heartbeat = 0.0
        self.idle = False  # nothing to do: the runner may sleep until a WORK_SIGNAL

    def heartbeat_if_due(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_EVERY / self.speed:
            self.coordinator.heartbeat(self.agent_id)
            self.last_heartbeat = now

    def session(self, session_id: str, purpose: str = "") -> TeamSession:
        return TeamSession(self.memory, session_id, purpose, team_id=self.team_id, credentials=self.credentials)

    def wait_for_work(self, seconds: float) -> None:
        """Sleep until the lead announces work (a broadcast) or ``seconds`` pass."""
        self.coordinator.receive_signals(WORK_SIGNAL, wait=seconds)

    def step(self) -> float:
        raise NotImplementedError


class Worker(Actor):
    """A reviewer: claim, work, complete (or fail, or crash), report, sometimes stage a pattern."""

    def __init__(self, memory, team_id, agent_id, capabilities, lead, rng, speed):
        super().__init__(memory, team_id, agent_id, AccessTier.CONTRIBUTOR, rng, speed)
        self.capabilities = list(capabilities)
        self.lead = lead
        self.task: AgentTask | None = None
        self.crashed = False
        self.registered = False

    def step(self) -> float:
        self.idle = False
        if self.crashed or not self.registered:  # (re)start: register, then look for work
            self.coordinator.register_agent(self.agent_id, self.capabilities)
            self.coordinator.heartbeat(self.agent_id)
            self.last_heartbeat = time.monotonic()
            self.registered, self.crashed = True, False
        self.heartbeat_if_due()
        if self.task is None:
            return self.claim()
        return self.finish(self.choose_outcome())

    def lease_seconds(self) -> float:
        """The lease of a claim, in real seconds (long enough for the work at any speed)."""
        return max(MIN_LEASE_SECONDS, LEASE_SECONDS / self.speed)

    def claim(self) -> float:
        self.task = self.coordinator.claim_task(self.agent_id, lease_seconds=self.lease_seconds())
        self.idle = self.task is None
        if self.task is None:
            return 2.0
        session_id = self.task.context.get("session")
        if session_id:
            self.session(session_id).add_agent(self.agent_id)
        return self.rng.uniform(1.0, 2.0)  # the work

    def choose_outcome(self) -> str:
        roll = self.rng.random()
        if roll < CRASH_CHANCE:
            return "crash"
        return "fail" if roll < CRASH_CHANCE + FAIL_CHANCE else "complete"

    def finish(self, outcome: str) -> float:
        """End the current task with ``outcome`` (complete, fail or crash); returns the pause after."""
        task, self.task = self.task, None
        try:
            if outcome == "crash":
                # Fall silent: no heartbeat renews the lease, which lapses; the task goes back.
                self.crashed = True
                log.info("demo: %s crashed holding %s", self.agent_id, task.task_id)
                return (self.lease_seconds() + 1.0) * self.speed + 2.0  # silent past the lease, then restart
            if outcome == "fail":
                reason = self.rng.choice(FAILURE_REASONS)
                retry = self.rng.random() < 0.5
                status = self.coordinator.fail_task(task.task_id, reason, self.agent_id, retry=retry,
                                                    lease_token=task.lease_token)
                self.coordinator.send_signal("task_failed", {"task_id": task.task_id, "reason": reason,
                                                             "status": status}, self.lead)
                return 0.5
            self.complete(task)
        except ConflictError as exc:  # the lease lapsed meanwhile (a stalled thread): someone else has it
            log.info("demo: %s lost %s: %s", self.agent_id, task.task_id, exc)
        return 0.3

    def complete(self, task: AgentTask) -> None:
        result = result_for(task.task_type, task.context, self.rng)
        self.coordinator.complete_task(task.task_id, result, self.agent_id, lease_token=task.lease_token)
        summary = {"task_id": task.task_id, "task_type": task.task_type, "summary": result["summary"],
                   "session": task.context.get("session"),
                   "confidence": round(self.rng.uniform(0.75, 0.98), 2)}
        self.coordinator.send_signal("analysis_complete", summary, self.lead)
        if result.get("critical"):
            self.coordinator.send_signal("critical_finding", {"task_id": task.task_id, "file": task.context.get("file"),
                                                              "finding": result["summary"]})
        session_id = task.context.get("session")
        if session_id:
            self.session(session_id).share(f"{task.task_type}.{task.task_id}", result)
        if self.rng.random() < STAGE_CHANCE:
            self.discover_pattern(task)

    def discover_pattern(self, task: AgentTask, spec: dict | None = None) -> str:
        """Consult the library, then stage what it lacks (unless the review queue is full).
        Returns what happened: reused, staged or queue full. ``spec``: this pattern, looked up first."""
        rediscovery = spec is None and self.rng.random() < REDISCOVERY_CHANCE
        if spec is None:
            # A rediscovery: the type's classic pattern (the library has it), staged without looking.
            spec = PATTERNS[task.task_type][0] if rediscovery else self.rng.choice(PATTERNS[task.task_type])
        candidate = staged_pattern(spec, f"pat_{spec['slug']}_{short_id()}", self.agent_id, task, self.rng)
        if not rediscovery:  # usually, look before staging
            try:
                found = library.search(self.team_id, q=spec["keyword"])
            except DatabaseError:
                found = []
            same = [p for p in found if p.content_hash == candidate.content_hash]
            if same:
                self.coordinator.send_signal("pattern_reused", {"pattern": same[0].pattern_id,
                                                                "task_id": task.task_id})
                return "reused"
        try:
            self.memory.stage_pattern(self.credentials, candidate)
        except StagingFullError:
            return "queue full"
        return "staged"


class Lead(Actor):
    """A team lead: opens reviews (session + tasks), reads its signals, reaps lapsed leases, sums up."""

    def __init__(self, memory, plan: TeamPlan, rng, speed):
        super().__init__(memory, plan.team_id, plan.lead, AccessTier.STEWARD, rng, speed)
        self.plan = plan
        self.open: dict[str, list[str]] = {}  # session id -> its task ids
        self.findings: dict[str, int] = {}
        self.number = rng.randint(100, 899)
        self.registered = False

    def step(self) -> float:
        if not self.registered:
            self.coordinator.register_agent(self.agent_id, ["triage"])
            self.registered = True
        self.heartbeat_if_due()
        for signal in self.coordinator.receive_signals():
            if signal["signal_type"] == "analysis_complete":
                session = (signal["data"] or {}).get("session")
                self.findings[session] = self.findings.get(session, 0) + 1
        self.coordinator.reap_expired_leases()
        self.close_finished()
        if len(self.open) < self.plan.reviews_open and self.coordinator.count_tasks()["pending"] == 0:
            self.open_review()
        return 0.7

    def open_review(self) -> str:
        """A new piece of work: a session with shared context and one task per type and file."""
        kind = WORK[self.plan.team_id]
        self.number += 1
        while get_session_info(self.memory, self.team_id, f"{kind['session']}_{self.number}"):
            self.number += 1  # a session of an earlier run: leave it be
        session_id = f"{kind['session']}_{self.number}"
        title = self.rng.choice(kind["titles"])
        files = self.rng.sample(kind["files"], self.rng.randint(1, 3))
        session = self.session(session_id, f"{kind['purpose']} #{self.number}: {title}")
        session.add_agent(self.agent_id)
        session.share(kind["context_key"], context_for(self.plan.team_id, self.number, title, files, self.rng))
        types = sorted({t for caps in self.plan.agents.values() for t in caps})
        tasks = []
        for task_type in types:
            for name in files:
                tasks.append(AgentTask(
                    f"{PREFIX[task_type]}_{short_id()}", task_type,
                    describe(task_type, name, self.number), priority=priority(task_type, self.rng),
                    context={"session": session_id, "number": self.number, "file": name}))
        self.coordinator.add_tasks(tasks)
        self.coordinator.broadcast(WORK_SIGNAL, {"session": session_id, "tasks": len(tasks)})
        self.open[session_id] = [t.task_id for t in tasks]
        return session_id

    def close_finished(self) -> None:
        for session_id, task_ids in list(self.open.items()):
            tasks = [self.coordinator.get_task(t) for t in task_ids]
            if any(t is not None and t.status in ("pending", "in_progress") for t in tasks):
                continue
            failed = sum(1 for t in tasks if t is not None and t.status == "failed")
            verdict = "changes requested" if failed or self.rng.random() < 0.4 else "approved"
            self.session(session_id).share("summary", {"verdict": verdict, "tasks": len(task_ids), "failed": failed,
                                                       "reports": self.findings.pop(session_id, 0)})
            self.coordinator.broadcast("review_finished", {"session": session_id, "verdict": verdict})
            del self.open[session_id]


def capped_staging(memory, limit: int) -> RedisShortTermMemory:
    """``memory`` (the same connection) with at most ``limit`` staged patterns per team."""
    if memory.config.staged_pattern_limit <= limit:
        return memory
    return RedisShortTermMemory(client=memory.client, config=replace(memory.config, staged_pattern_limit=limit))


class Demo:
    """Every actor of every team, over one memory (its staging capped at ``max_staged`` per team)."""

    def __init__(self, memory, speed: float = 1.0, seed: int | None = None, teams=TEAMS,
                 max_staged: int = MAX_STAGED):
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        memory = self.memory = capped_staging(memory, max_staged)
        self.speed = speed
        rng = random.Random(seed)
        self.actors: list[Actor] = []
        for plan in teams:
            self.actors.append(Lead(memory, plan, random.Random(rng.random()), speed))
            for agent_id, caps in plan.agents.items():
                self.actors.append(Worker(memory, plan.team_id, agent_id, caps, plan.lead,
                                          random.Random(rng.random()), speed))
        self.teams = list(teams)

    def seed_library(self) -> int:
        """Give each team's library its first patterns (staged by an agent, promoted by a validator)
        when it has none, so look-ups can hit and rediscoveries can happen. Returns how many."""
        seeded = 0
        for plan in self.teams:
            if LibraryPattern.objects.filter(team_id=plan.team_id).exists():
                continue
            validator = AgentCredentials(SEED_VALIDATOR, AccessTier.VALIDATOR, plan.team_id)
            for agent_id, caps in plan.agents.items():
                spec = PATTERNS[caps[0]][0]
                author = AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, plan.team_id)
                pattern = staged_pattern(spec, f"pat_{spec['slug']}_{short_id()}", agent_id, None,
                                              random.Random(seeded))
                self.memory.stage_pattern(author, pattern)
                library.promote(self.memory, validator, pattern.pattern_id, "seeded by the demo")
                seeded += 1
        return seeded

    def process_one(self) -> list[tuple[str, float]]:
        """Step every actor once (no waiting): ``(agent id, pause it asked for)`` each."""
        return [(actor.agent_id, actor.step()) for actor in self.actors]


def _run_actor(actor: Actor, stop: threading.Event) -> None:
    backoff = 1.0
    try:
        while not stop.is_set():
            try:
                pause = actor.step() / actor.speed
                backoff = 1.0
            except MemoryUnavailableError as exc:
                log.warning("demo: %s waits for the memory: %s", actor.agent_id, exc)
                pause, backoff = backoff, min(backoff * 2, 10.0)
            except (EmpathyError, DatabaseError) as exc:
                log.warning("demo: %s: %s", actor.agent_id, exc)
                pause = 1.0
            except Exception:
                log.exception("demo: %s failed a step", actor.agent_id)
                pause = 5.0
            if actor.idle and not stop.is_set():
                try:  # sleep on the signal stream, waking every second to check the stop event
                    actor.wait_for_work(min(pause, 1.0))
                except EmpathyError:
                    stop.wait(1.0)
            else:
                stop.wait(pause)
            close_old_connections()
    finally:
        connection.close()


def run_demo(memory, stop_event: threading.Event, speed: float = 1.0, seed: int | None = None,
             teams=TEAMS) -> list[threading.Thread]:
    """Start the demo: seed the libraries, then one daemon thread per actor, until ``stop_event``
    is set. Returns the threads (join them after setting the event)."""
    demo = Demo(memory, speed, seed, teams)
    try:
        demo.seed_library()
    except (EmpathyError, DatabaseError, library.LibraryUnavailableError) as exc:
        log.warning("demo: could not seed the pattern library: %s", exc)
    finally:
        connection.close()
    threads = [threading.Thread(target=_run_actor, args=(actor, stop_event), daemon=True,
                                name=f"demo-{actor.team_id}-{actor.agent_id}") for actor in demo.actors]
    for thread in threads:
        thread.start()
    return threads

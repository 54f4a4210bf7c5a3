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
:meth:`Demo.process_one` steps every actor once, for tests.
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
    StagedPattern,
    StagingFullError,
    TeamSession,
    get_session_info,
)
from patterns import library
from patterns.models import LibraryPattern

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



# -- what the simulated work looks like ----------------------------------------------------------------

PREFIX = {"security_review": "sec", "performance_review": "perf", "style_review": "style",
          "deploy_check": "deploy", "capacity_planning": "cap"}

WORK = {
    "review_team": {
        "session": "pr_review", "purpose": "Review PR", "context_key": "pr_context",
        "titles": ["Authentication refactor", "Add rate limiting to the public API", "Cache user profiles",
                   "Migrate billing to the new ledger", "Bulk export of audit logs", "Password reset flow"],
        "files": ["auth.py", "api.py", "billing/ledger.py", "users/models.py", "exports/csv.py",
                  "middleware/ratelimit.py", "templates/profile.html", "tests/test_auth.py"],
    },
    "platform_team": {
        "session": "release", "purpose": "Release", "context_key": "release_context",
        "titles": ["Weekly release", "Hotfix for session expiry", "Kernel patch rollout", "Redis upgrade"],
        "files": ["api-gateway", "worker-pool", "scheduler", "web-frontend", "search-indexer"],
    },
}

DESCRIPTIONS = {
    "security_review": "Review {file} for vulnerabilities (#{number})",
    "performance_review": "Profile the queries and hot paths of {file} (#{number})",
    "style_review": "Check {file} against the style guide (#{number})",
    "deploy_check": "Pre-deployment checks for {file} (release {number})",
    "capacity_planning": "Capacity plan for {file} after release {number}",
}

PRIORITIES = {"security_review": (7, 9), "performance_review": (5, 7), "style_review": (2, 4),
              "deploy_check": (6, 9), "capacity_planning": (3, 5)}

FAILURE_REASONS = [
    "timed out fetching the diff from the VCS",
    "static analyser crashed on a generated file",
    "rate limited by the code-search service",
    "could not resolve the base commit (force-pushed branch)",
    "test environment unavailable",
]

#: Patterns agents discover, per task type. The first of each type seeds the library.
PATTERNS = {
    "security_review": [
        {"slug": "param_sql", "keyword": "parameterised", "type": "security", "name": "Parameterised SQL queries",
         "description": "Pass user input as query parameters, never by string formatting (parameterised queries).",
         "code": 'cursor.execute("SELECT * FROM users WHERE email = %s", [email])'},
        {"slug": "escape_html", "keyword": "escape", "type": "security", "name": "Let the template escape user content",
         "description": "Never build HTML from user input by hand: the template engine escapes it.",
         "code": '# Before (XSS): a comment of "<script>fetch(\'/steal?c=\' + document.cookie)</script>"\n'
                 'html = f"<p>{comment.body}</p>"\n\n# After: the template escapes it\n<p>{{ comment.body }}</p>'},
        {"slug": "compare_digest", "keyword": "compare_digest", "type": "security",
         "name": "Constant-time token comparison",
         "description": "Compare secrets with hmac.compare_digest so timing does not leak them.",
         "code": "if not hmac.compare_digest(given_token, expected_token):\n    raise PermissionDenied"},
    ],
    "performance_review": [
        {"slug": "eager_load", "keyword": "select_related", "type": "optimization",
         "name": "Eager Loading for N+1 Queries",
         "description": "Replace lazy loading with eager loading when iterating over related objects",
         "code": "users = User.objects.select_related('profile').all()\nfor user in users:\n"
                 "    print(user.profile.name)  # No additional queries"},
        {"slug": "bulk_create", "keyword": "bulk_create", "type": "optimization", "name": "Batch inserts",
         "description": "Insert rows in one statement with bulk_create instead of one save() each.",
         "code": "Event.objects.bulk_create([Event(**row) for row in rows], batch_size=500)"},
        {"slug": "lru_cache", "keyword": "lru_cache", "type": "optimization", "name": "Memoise pure lookups",
         "description": "Cache results of a pure, hot function with functools.lru_cache.",
         "code": "@functools.lru_cache(maxsize=1024)\ndef tax_rate(country: str) -> Decimal:\n    ..."},
    ],
    "style_review": [
        {"slug": "lazy_logging", "keyword": "log.info", "type": "style", "name": "Lazy logging arguments",
         "description": "Pass logging arguments separately so messages are only formatted when emitted.",
         "code": 'log.info("user %s logged in", user_id)'},
        {"slug": "no_bare_except", "keyword": "except", "type": "style", "name": "Catch what you expect",
         "description": "Catch named exceptions; a bare except hides bugs and KeyboardInterrupt.",
         "code": "try:\n    value = int(raw)\nexcept ValueError:\n    value = default"},
        {"slug": "early_return", "keyword": "guard", "type": "style", "name": "Guard clauses",
         "description": "Return early on the guard conditions instead of nesting the happy path.", "code": None},
    ],
    "deploy_check": [
        {"slug": "readiness_probe", "keyword": "readinessProbe", "type": "reliability",
         "name": "Readiness probe before traffic",
         "description": "Route traffic to a pod only once its readiness probe passes.",
         "code": "readinessProbe:\n  httpGet: {path: /healthz, port: 8080}\n  periodSeconds: 5"},
        {"slug": "canary", "keyword": "canary", "type": "reliability", "name": "Canary first",
         "description": "Send 5% of traffic to the new version and compare error rates before the rollout.",
         "code": None},
    ],
    "capacity_planning": [
        {"slug": "headroom", "keyword": "headroom", "type": "capacity", "name": "Keep 30% CPU headroom",
         "description": "Scale out when sustained CPU use passes 70%, so a zone failure fits.", "code": None},
        {"slug": "queue_depth", "keyword": "queue depth", "type": "capacity", "name": "Autoscale on queue depth",
         "description": "Scale workers on queue depth per worker, not on CPU.",
         "code": "target_queue_depth_per_worker: 20\nmin_workers: 2\nmax_workers: 40"},
    ],
}


def describe(task_type: str, name: str, number: int) -> str:
    return DESCRIPTIONS[task_type].format(file=name, number=number)


def priority(task_type: str, rng: random.Random) -> int:
    low, high = PRIORITIES[task_type]
    return 10 if rng.random() < 0.05 else rng.randint(low, high)  # now and then, urgent


def context_for(team_id: str, number: int, title: str, files: list, rng: random.Random) -> dict:
    if team_id == "review_team":
        return {"pr_number": number, "title": title, "author": f"developer_{rng.randint(100, 999)}",
                "files_changed": files, "lines_added": rng.randint(20, 600), "lines_removed": rng.randint(0, 300)}
    return {"release": number, "title": title, "services": files, "change_window": "14:00-16:00 UTC",
            "rollback_plan": "previous image tag, feature flags off"}


def result_for(task_type: str, context: dict, rng: random.Random) -> dict:
    """A plausible result for a task of ``task_type``: always a ``summary``; ``critical`` if it is."""
    name, ms = context.get("file", "?"), rng.randint(300, 4000)
    if task_type == "security_review":
        vulns, warnings = (1 if rng.random() < 0.1 else 0), rng.randint(0, 4)
        findings = [{"file": name, "line": rng.randint(10, 400), "rule": rng.choice(
            ["B608 SQL built from strings", "B105 hard-coded password", "B303 weak hash", "B201 debug mode"]),
            "severity": "high" if vulns else "medium"} for _ in range(vulns + min(warnings, 2))]
        return {"summary": f"{vulns} vulnerabilities, {warnings} warnings in {name}", "critical": bool(vulns),
                "vulnerabilities": vulns, "warnings": warnings, "findings": findings, "time_taken_ms": ms}
    if task_type == "performance_review":
        before = rng.randint(3, 120)
        after = max(1, before // rng.randint(1, 12))
        return {"summary": f"{before} -> {after} queries per request in {name}", "queries_before": before,
                "queries_after": after, "p95_ms": rng.randint(20, 900), "time_taken_ms": ms,
                "hotspots": [f"{name}:{rng.randint(10, 300)}" for _ in range(rng.randint(0, 3))]}
    if task_type == "style_review":
        violations = rng.randint(0, 15)
        return {"summary": f"{violations} style violations in {name}", "violations": violations,
                "auto_fixable": rng.randint(0, violations), "time_taken_ms": ms,
                "rules": {"E501": rng.randint(0, 5), "F401": rng.randint(0, 3), "N802": rng.randint(0, 2)}}
    if task_type == "deploy_check":
        failed = 1 if rng.random() < 0.1 else 0
        return {"summary": f"{name}: {12 - failed}/12 checks passed", "critical": bool(failed),
                "checks_passed": 12 - failed, "checks_failed": failed, "image": f"{name}:{rng.randint(1000, 9999)}",
                "rollout": "blocked" if failed else "canary 5%", "time_taken_ms": ms}
    headroom = rng.randint(8, 60)
    return {"summary": f"{name}: {headroom}% CPU headroom at peak", "cpu_headroom_pct": headroom,
            "recommendation": "add 2 nodes" if headroom < 30 else "no change", "time_taken_ms": ms}


def staged_pattern(spec: dict, pattern_id: str, agent_id: str, task: AgentTask | None,
                   rng: random.Random) -> StagedPattern:
    context = {"discovered_in": task.context.get("session"), "file": task.context.get("file"),
               "task_id": task.task_id} if task else {"source": "team handbook"}
    return StagedPattern(pattern_id=pattern_id, agent_id=agent_id, pattern_type=spec["type"], name=spec["name"],
                         description=spec["description"], confidence=round(rng.uniform(0.6, 0.97), 2),
                         code=spec["code"], context=context)


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

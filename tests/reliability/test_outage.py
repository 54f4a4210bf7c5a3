"""Redis outages: a private redis-server under traffic is SIGKILLed, then restarted on the same port.

While it is down, every library operation raises the one exception ``MemoryUnavailableError`` (no
redis-py exception and no redis-py traceback reaches the caller) and the HTTP API answers 503 with
``Retry-After``. Once it is back, the same processes carry on by themselves: nothing is restarted.
The dashboard's side of an outage is in ``tests/browser/test_outage_browser.py``.

Recovery times are printed (``pytest -s``) for docs/reliability.md; the only bound asserted is a
generous one (RECOVERY_BOUND_S), so a slow machine does not fail the run but a hang does.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import traceback
from collections import Counter

import pytest
import redis

from coordination.bench_live import SiteServer
from coordination.memory import memory_in_use
from coordination.tokens import issue_token
from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    EmpathyError,
    EmpathyOS,
    MemoryUnavailableError,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
    create_conflict_context,
    get_session_info,
    list_sessions,
    lock_pattern,
    promote_pattern,
    reject_pattern,
)
from empathy_os.events import EventReader
from tests.support import Api, wait_until

TEAM = "outage"
#: A failure criterion, not a target: recovery is expected within about a second of Redis answering.
RECOVERY_BOUND_S = 10.0


class World:
    """A team in use: a registered agent holding a task, a pending task, a session, a staged pattern."""

    def __init__(self, memory: RedisShortTermMemory):
        self.memory = memory
        self.lead = AgentCoordinator(memory, TEAM)
        self.worker = AgentCredentials("alpha", AccessTier.CONTRIBUTOR, TEAM)
        self.validator = AgentCredentials("vera", AccessTier.VALIDATOR, TEAM)
        self.agent = EmpathyOS("alpha", memory, team_id=TEAM)
        self.lead.register_agent("alpha", ["review"])
        self.lead.add_tasks([AgentTask("held", "review"), AgentTask("waiting", "review")])
        self.held = self.lead.claim_task("alpha", "review")
        self.agent.stash("notes", {"seen": 1})
        self.session = TeamSession(memory, "triage", "sort the backlog", team_id=TEAM, credentials=self.worker)
        memory.stage_pattern(self.worker, StagedPattern("p1", "alpha", "security", "Bound parameters"))


#: Every kind of library operation, each as a call on a :class:`World`.
OPERATIONS = {
    "stash": lambda w: w.agent.stash("notes", {"seen": 2}),
    "retrieve": lambda w: w.agent.retrieve("notes"),
    "retrieve another agent's": lambda w: w.memory.retrieve(w.validator, "notes", "alpha"),
    "forget": lambda w: w.agent.forget("notes"),
    "register_agent": lambda w: w.lead.register_agent("beta", ["review"]),
    "heartbeat": lambda w: w.lead.heartbeat("alpha"),
    "get_agents": lambda w: w.lead.get_agents(),
    "get_active_agents": lambda w: w.lead.get_active_agents(),
    "add_task": lambda w: w.lead.add_task(AgentTask("new", "review")),
    "add_tasks": lambda w: w.lead.add_tasks([AgentTask("n1", "review"), AgentTask("n2", "review")]),
    "claim_task": lambda w: w.lead.claim_task("alpha", "review"),
    "claim_task by capability": lambda w: w.lead.claim_task("alpha"),
    "complete_task": lambda w: w.lead.complete_task("held", {"ok": True}, agent_id="alpha"),
    "fail_task": lambda w: w.lead.fail_task("held", "broken", agent_id="alpha"),
    "extend_lease": lambda w: w.lead.extend_lease("held", "alpha"),
    "reap_expired_leases": lambda w: w.lead.reap_expired_leases(),
    "get_task": lambda w: w.lead.get_task("held"),
    "get_task_history": lambda w: w.lead.get_task_history("held"),
    "list_tasks": lambda w: w.lead.list_tasks("pending"),
    "count_tasks": lambda w: w.lead.count_tasks(),
    "aggregate_results": lambda w: w.lead.aggregate_results(),
    "send_signal (broadcast)": lambda w: w.agent.send_signal("review.done", {"pr": 1}),
    "send_signal (targeted)": lambda w: w.agent.send_signal("ping", {}, target_agent="vera"),
    "receive_signals": lambda w: w.agent.receive_signals(),
    "receive_signals (wait)": lambda w: w.agent.receive_signals(wait=0.5),
    "open a session": lambda w: TeamSession(w.memory, "other", "p", team_id=TEAM, credentials=w.worker),
    "share in a session": lambda w: w.session.share("plan", {"step": 1}),
    "read a session's context": lambda w: w.session.get("plan"),
    "add an agent to a session": lambda w: w.session.add_agent("alpha"),
    "get_session_info": lambda w: get_session_info(w.memory, TEAM, "triage"),
    "list_sessions": lambda w: list_sessions(w.memory, TEAM),
    "stage_pattern": lambda w: w.memory.stage_pattern(w.worker, StagedPattern("p2", "alpha", "perf", "Cache it")),
    "get_staged_patterns": lambda w: w.memory.get_staged_patterns(w.validator),
    "lock_pattern": lambda w: lock_pattern(w.memory, w.validator, "p1"),
    "promote_pattern": lambda w: promote_pattern(w.memory, w.validator, "p1"),
    "reject_pattern": lambda w: reject_pattern(w.memory, w.validator, "p1", "too vague"),
    "create_conflict_context": lambda w: create_conflict_context(w.memory, w.worker, "c1", {"alpha": "a", "beta": "b"}),
    "persist_state": lambda w: w.memory.persist_state(w.worker, "triage", {"level": 2}),
    "restore_state": lambda w: w.memory.restore_state(w.worker, "triage"),
    "get_stats": lambda w: w.memory.get_stats(),
    "list_teams": lambda w: w.memory.list_teams(),
    "read_events": lambda w: w.memory.read_events(TEAM),
    "relay's read of events": lambda w: EventReader(w.memory, teams_refresh_s=0).read(block_ms=10),
}


def assert_clean_unavailable(exc: BaseException) -> None:
    """The library's exception, saying to retry, with no redis-py exception chained or in its traceback."""
    assert type(exc) is MemoryUnavailableError, repr(exc)
    assert exc.__cause__ is None and exc.__suppress_context__, "a redis-py exception is chained"
    assert "retry later" in str(exc)
    shown = "".join(traceback.format_exception(exc))
    assert "site-packages/redis/" not in shown and "redis.exceptions" not in shown, shown


class Traffic:
    """Agents at work in threads (tasks, signals, working memory), recording what each call raised
    and when each thread last succeeded."""

    def __init__(self, memory: RedisShortTermMemory, threads: int = 3):
        self.memory = memory
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: Counter = Counter()
        self.unexpected: list[str] = []
        self.successes = [0] * threads
        self.failures = [0] * threads
        self.last_success = [0.0] * threads
        AgentCoordinator(memory, TEAM).register_agent("worker", ["load"])
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _step(self, i: int, n: int) -> None:
        lead = AgentCoordinator(self.memory, TEAM)
        agent = EmpathyOS(f"agent-{i}", self.memory, team_id=TEAM)
        kind = (i + n) % 3
        if kind == 0:
            task_id = f"load-{i}-{n}"
            lead.add_task(AgentTask(task_id, "load"))
            task = lead.claim_task("worker", "load")
            if task is not None:
                lead.complete_task(task.task_id, {"n": n}, agent_id="worker")
        elif kind == 1:
            agent.send_signal("tick", {"n": n})
            agent.receive_signals()
        else:
            agent.stash("scratch", {"n": n})
            agent.retrieve("scratch")

    def _run(self, i: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self._step(i, n)
            except EmpathyError as exc:
                with self.lock:
                    self.errors[type(exc).__name__] += 1
                    self.failures[i] += 1
                    if isinstance(exc, MemoryUnavailableError) and (exc.__cause__ or not exc.__suppress_context__):
                        self.unexpected.append(f"chained: {exc!r}")
                time.sleep(0.005)
                continue
            except Exception as exc:  # anything else is a leak: recorded, and the test fails
                with self.lock:
                    self.unexpected.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
                time.sleep(0.005)
                continue
            with self.lock:
                self.successes[i] += 1
                self.last_success[i] = time.monotonic()

    def wait_until(self, condition, what: str, timeout: float = RECOVERY_BOUND_S) -> float:
        """Wait for ``condition()`` (checked every few ms); returns the seconds it took."""
        start = time.monotonic()
        wait_until(condition, timeout, 0.002, lambda: f"traffic: {what} not within {timeout} s (successes "
                                                      f"{self.successes}, failures {self.failures}, {dict(self.errors)})")
        return time.monotonic() - start


def test_it_raises_memory_unavailable_for_every_operation_while_redis_is_down(private_redis):
    memory = RedisShortTermMemory(private_redis.url)
    world = World(memory)
    with Traffic(memory) as traffic:
        traffic.wait_until(lambda: min(traffic.successes) >= 20, "warm-up")
        private_redis.kill()
        failed_before = list(traffic.failures)
        traffic.wait_until(lambda: all(f > b for f, b in zip(traffic.failures, failed_before)),
                           "every agent sees the outage")
        raised = {}
        for name, operation in OPERATIONS.items():
            with pytest.raises(Exception) as caught:
                operation(world)
            raised[name] = caught.value
        private_redis.start()
        back = time.monotonic()
        recovered = traffic.wait_until(lambda: min(traffic.last_success) > back, "every agent works again")
        traffic.wait_until(lambda: min(traffic.successes) >= 40, "the traffic goes on")
    wrong = []
    for name, exc in raised.items():
        try:
            assert_clean_unavailable(exc)
        except AssertionError as failure:
            wrong.append(f"{name}: {failure}")
    assert wrong == []
    assert traffic.unexpected == []
    assert traffic.errors["MemoryUnavailableError"] > 0
    print(f"\noutage (library): {len(OPERATIONS)} operations raised MemoryUnavailableError while down; "
          f"traffic errors {dict(traffic.errors)}; every agent working again {recovered * 1000:.1f} ms "
          "after Redis answered")
    # The same memory object works on the restarted (empty) server: nothing was rebuilt.
    World(memory)
    assert AgentCoordinator(memory, TEAM).get_task("held").status == "in_progress"
    assert TEAM in memory.list_teams()  # the team index, lost with the data, was written again


def test_it_raises_memory_unavailable_in_a_blocked_receive_when_redis_dies(private_redis):
    memory = RedisShortTermMemory(private_redis.url)
    agent = EmpathyOS("sleeper", memory, team_id=TEAM)
    agent.receive_signals()
    outcome = {}

    def wait_for_signals():
        try:
            outcome["value"] = agent.receive_signals(wait=20)
        except Exception as exc:  # recorded for the assertions below
            outcome["error"] = exc

    waiter = threading.Thread(target=wait_for_signals)
    waiter.start()
    observer = redis.Redis(port=private_redis.port)
    wait_until(lambda: not waiter.is_alive() or any(c.get("cmd") == "xread" for c in observer.client_list()),
               RECOVERY_BOUND_S, message=lambda: outcome)  # the receive is blocked in XREAD
    assert waiter.is_alive(), outcome
    observer.close()
    private_redis.kill()
    waiter.join(RECOVERY_BOUND_S)
    assert not waiter.is_alive()
    assert "value" not in outcome
    assert_clean_unavailable(outcome["error"])


# -- the HTTP API, in this process ------------------------------------------------------------------


@pytest.fixture
def api_on_private_redis(private_redis, transactional_db):
    """The site's memory on the test's own redis-server; tokens of a contributor and a validator."""
    memory = RedisShortTermMemory(private_redis.url)
    with memory_in_use(memory):
        tokens = {tier: issue_token(f"{tier}-1", TEAM, tier, created_by="tests")[0] for tier in ("contributor", "validator")}
        yield memory, tokens
    memory.client.close()


#: (method, path, body, tier) of calls that all need the memory.
API_CALLS = [
    ("GET", "/stats", None, "contributor"),
    ("PUT", "/memory/notes", {"value": {"a": 1}}, "contributor"),
    ("GET", "/memory/notes", None, "contributor"),
    ("DELETE", "/memory/notes", None, "contributor"),
    ("POST", "/agents/register", {"capabilities": ["review"]}, "contributor"),
    ("POST", "/agents/heartbeat", None, "contributor"),
    ("GET", "/agents", None, "contributor"),
    ("POST", "/tasks", {"task_id": "t-1", "task_type": "review"}, "validator"),
    ("POST", "/tasks/claim", {"task_type": "review"}, "contributor"),
    ("POST", "/tasks/t-1/complete", {"result": {"ok": True}}, "contributor"),
    ("POST", "/tasks/t-1/fail", {"reason": "broken"}, "contributor"),
    ("POST", "/tasks/t-1/heartbeat", None, "contributor"),
    ("GET", "/tasks?status=pending", None, "contributor"),
    ("GET", "/tasks/t-1", None, "contributor"),
    ("GET", "/results", None, "contributor"),
    ("POST", "/signals", {"signal_type": "ping", "data": {}}, "contributor"),
    ("GET", "/signals", None, "contributor"),
    ("GET", "/signals?wait=0.5", None, "contributor"),
    ("POST", "/sessions", {"session_id": "s1", "purpose": "triage"}, "contributor"),
    ("GET", "/sessions/s1", None, "contributor"),
    ("PUT", "/sessions/s1/context/plan", {"value": 1}, "contributor"),
    ("POST", "/patterns/staged", {"pattern_id": "p1", "pattern_type": "security", "name": "Bound parameters"},
     "contributor"),
    ("GET", "/patterns/staged", None, "validator"),
    ("POST", "/patterns/staged/p1/promote", {"note": "good"}, "validator"),
    ("POST", "/patterns/staged/p1/reject", {"reason": "vague"}, "validator"),
    ("PUT", "/state/s1", {"state": {"level": 1}}, "contributor"),
    ("GET", "/state/s1", None, "contributor"),
    ("GET", "/health", None, None),
]


def test_it_answers_503_with_retry_after_while_redis_is_down(private_redis, api_on_private_redis):
    memory, tokens = api_on_private_redis
    api = Api()
    assert api.get("/health").status_code == 200
    private_redis.kill()
    wrong = []
    for method, path, body, tier in API_CALLS:
        response = api.request(method, path, body, token=tokens.get(tier))
        problem = None
        if response.status_code != 503:
            problem = f"status {response.status_code}: {response.content[:200]!r}"
        elif not response.get("Retry-After", "").isdigit():
            problem = f"Retry-After is {response.get('Retry-After')!r}"
        elif response.json().get("error") != "memory_unavailable" or set(response.json()) != {"error", "detail"}:
            problem = f"body {response.json()}"
        elif "redis.exceptions" in response.content.decode() or "Traceback" in response.content.decode():
            problem = "the body shows redis-py internals"
        if problem:
            wrong.append(f"{method} {path}: {problem}")
    assert wrong == []

    private_redis.start()
    back = time.monotonic()
    wait_until(lambda: api.get("/stats", token=tokens["contributor"]).status_code == 200, RECOVERY_BOUND_S, 0.005,
               "the API did not recover")
    recovered = time.monotonic() - back
    added = api.post("/tasks", {"task_id": "t-2", "task_type": "review"}, token=tokens["validator"])
    assert added.status_code == 201, added.content
    print(f"\noutage (API in process): {len(API_CALLS)} endpoints answered 503 + Retry-After; "
          f"first 200 {recovered * 1000:.1f} ms after Redis answered")


# -- the real server process --------------------------------------------------------------------------


def http_get(port: int, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_it_recovers_without_restarting_the_server_process(private_redis):
    site = SiteServer(private_redis.url, {}, "unused-password-1")
    try:
        pid = site.process.pid
        assert http_get(site.port, "/api/v1/health")[0] == 200
        private_redis.kill()
        status, headers, body = http_get(site.port, "/api/v1/health")
        assert status == 503 and headers.get("Retry-After", "").isdigit(), (status, headers, body)
        assert json.loads(body)["error"] == "memory_unavailable"
        private_redis.start()
        back = time.monotonic()
        wait_until(lambda: http_get(site.port, "/api/v1/health")[0] == 200, RECOVERY_BOUND_S, 0.005,
                   lambda: f"the site did not recover:\n{site.log_tail()}")
        recovered = time.monotonic() - back
        assert site.process.poll() is None and site.process.pid == pid
        assert "Traceback" not in site.log_tail(100_000), site.log_tail()
        print(f"\noutage (server process): /api/v1/health 200 again {recovered * 1000:.1f} ms after Redis "
              "answered, same process")
    finally:
        site.stop()


def test_it_relays_the_first_change_made_after_a_restart(private_redis):
    agents = RedisShortTermMemory(private_redis.url)
    lead = AgentCoordinator(agents, TEAM)
    lead.register_agent("alpha", ["review"])
    reader = EventReader(RedisShortTermMemory(private_redis.url), teams_refresh_s=0)
    reader.read(block_ms=1)  # the relay has joined the team's stream
    lead.add_task(AgentTask("before", "review"))
    assert "before" in [fields.get("task") for _, _, fields in reader.read(block_ms=100)]
    private_redis.kill()
    with pytest.raises(MemoryUnavailableError):
        reader.read(block_ms=1)
    private_redis.start()
    lead.add_task(AgentTask("after", "review"))  # at once: before the relay is back on the empty server
    relayed = []

    def relayed_after():
        relayed.extend(fields.get("task") for _, _, fields in reader.read(block_ms=50))
        return "after" in relayed

    wait_until(relayed_after, RECOVERY_BOUND_S, 0, lambda: f"the relay never saw the change (saw {relayed})")
    assert TEAM in agents.list_teams()
    agents.client.close()
    reader.memory.client.close()

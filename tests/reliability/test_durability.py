"""Durability: every write Redis acknowledged survives a SIGKILL of Redis and a restart, when Redis runs
with the shipped ``deploy/redis.conf`` (``appendonly yes``, ``appendfsync always``); approved patterns and
decisions live in the database and never depend on Redis.

Agents (threads, each with its own connection) write as fast as they can: tasks added, claimed and
completed, working memory stashed, signals sent, patterns staged, and a validator promotes some. Each
write the library acknowledged (the call returned) goes into the agent's ledger. Redis is SIGKILLed in
the middle of that traffic, restarted on the same directory, and every ledger entry is looked up.
A control run with persistence off shows the check does find lost writes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import redis
from django.test import Client

from coordination.memory import memory_in_use
from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    MemoryUnavailableError,
    RedisShortTermMemory,
    StagedPattern,
    get_decision,
    get_staged_pattern,
)
from patterns import library
from patterns.models import LibraryPattern, PatternDecision
from tests.support import RedisServer, logged_in, tier_user, wait_until

TEAM = "durable"
AGENTS = 3
ACKS_BEFORE_KILL = 5000
KINDS = ("added", "claimed", "completed", "stashed", "signalled", "staged", "promoted")


@dataclass
class Ledger:
    """What one agent was told was written, and the write in flight when Redis died."""

    agent_id: str
    acked: dict = field(default_factory=lambda: {kind: [] for kind in KINDS})
    in_flight: str | None = None
    error: BaseException | None = None


class Traffic:
    """Agents writing until Redis dies; counts acknowledged writes across them."""

    def __init__(self, url: str):
        self.url = url
        self.acks = 0
        self.seconds = 0.0
        self.lock = threading.Lock()
        self.ledgers = [Ledger(f"agent{n}") for n in range(AGENTS)]

    def ack(self, ledger: Ledger, kind: str, value) -> None:
        ledger.acked[kind].append(value)
        with self.lock:
            self.acks += 1

    def agent(self, ledger: Ledger) -> None:
        memory = RedisShortTermMemory(self.url)
        try:
            self.write_until_down(memory, ledger)
        except MemoryUnavailableError:
            pass  # Redis died under this write: it is the one in flight
        except BaseException as exc:  # anything else fails the test
            ledger.error = exc
        finally:
            memory.client.close()

    def write_until_down(self, memory, ledger: Ledger) -> None:
        agent = ledger.agent_id
        me = AgentCredentials(agent, AccessTier.CONTRIBUTOR, TEAM)
        validator = AgentCredentials(f"{agent}-validator", AccessTier.VALIDATOR, TEAM)
        coordinator = AgentCoordinator(memory, TEAM, me)
        task_type = f"job-{agent}"
        for i in range(1_000_000):
            task_id, pattern_id = f"{agent}-t{i}", f"{agent}-p{i}"
            ledger.in_flight = f"add {task_id}"
            coordinator.add_task(AgentTask(task_id, task_type))
            self.ack(ledger, "added", task_id)
            ledger.in_flight = f"claim {task_id}"
            claimed = coordinator.claim_task(agent, task_type, lease_seconds=3600)
            self.ack(ledger, "claimed", (claimed.task_id, claimed.attempts))
            if i % 2 == 0:
                ledger.in_flight = f"complete {task_id}"
                coordinator.complete_task(task_id, {"n": i}, agent_id=agent, lease_token=claimed.lease_token)
                self.ack(ledger, "completed", task_id)
            ledger.in_flight = f"stash k{i}"
            memory.stash(me, f"k{i}", {"n": i, "by": agent})
            self.ack(ledger, "stashed", f"k{i}")
            ledger.in_flight = f"signal {i}"
            self.ack(ledger, "signalled", memory.send_signal(me, "progress", {"n": i}))
            ledger.in_flight = f"stage {pattern_id}"
            memory.stage_pattern(me, StagedPattern(pattern_id, agent, "optimization", f"Pattern {i}", code=f"f({i})"))
            self.ack(ledger, "staged", pattern_id)
            if i % 3 == 0:
                ledger.in_flight = f"promote {pattern_id}"
                memory.promote_pattern(validator, pattern_id, "looks right")
                self.ack(ledger, "promoted", pattern_id)
        ledger.in_flight = None


def drive_and_kill(server) -> tuple[Traffic, float]:
    """Run the agents, SIGKILL Redis once they have ACKS_BEFORE_KILL acknowledged writes, restart it.
    Returns the traffic and how long the restart took (until Redis answered with its data loaded)."""
    traffic = Traffic(server.url)
    threads = [threading.Thread(target=traffic.agent, args=(ledger,)) for ledger in traffic.ledgers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    wait_until(lambda: traffic.acks >= ACKS_BEFORE_KILL or not any(t.is_alive() for t in threads), 60, 0.005)
    server.kill()
    traffic.seconds = time.monotonic() - started
    for thread in threads:
        thread.join(30)
    for ledger in traffic.ledgers:
        assert ledger.error is None, repr(ledger.error)
        assert ledger.in_flight is not None  # every agent was cut off mid-traffic
    started = time.monotonic()
    server.start()
    return traffic, time.monotonic() - started


def found_after_restart(memory, ledger: Ledger) -> Counter:
    """How many of the agent's acknowledged writes are in Redis, per kind."""
    me = AgentCredentials(ledger.agent_id, AccessTier.CONTRIBUTOR, TEAM)
    coordinator = AgentCoordinator(memory, TEAM, me)
    acked, found = ledger.acked, Counter()
    promoted = set(acked["promoted"])
    tasks = {task_id: coordinator.get_task(task_id) for task_id in acked["added"]}
    found["added"] = sum(task is not None for task in tasks.values())
    for task_id, attempts in acked["claimed"]:
        task = tasks.get(task_id)
        found["claimed"] += bool(task and task.status in ("in_progress", "completed")
                                 and task.assigned_to == ledger.agent_id and task.attempts == attempts)
    for task_id in acked["completed"]:
        task = tasks.get(task_id)
        found["completed"] += bool(task and task.status == "completed"
                                   and task.result == {"n": int(task_id.rsplit("-t", 1)[1])})
    for key in acked["stashed"]:
        found["stashed"] += memory.retrieve(me, key) == {"n": int(key[1:]), "by": ledger.agent_id}
    stream = {entry_id for entry_id, _fields in memory.client.xrange(memory.team(TEAM).signals)}
    found["signalled"] = sum(signal_id in stream for signal_id in acked["signalled"])
    for pattern_id in acked["staged"]:
        if pattern_id in promoted:
            continue
        found["staged"] += (get_staged_pattern(memory, me, pattern_id) is not None
                            or promoted_in_flight(memory, me, ledger, pattern_id))
    for pattern_id in promoted:
        decision = get_decision(memory, me, pattern_id)
        found["promoted"] += bool(decision and decision["decision"] == "promoted"
                                  and get_staged_pattern(memory, me, pattern_id) is None)
    return found


def promoted_in_flight(memory, credentials, ledger: Ledger, pattern_id: str) -> bool:
    """The pattern left staging by the promotion in flight when Redis died (applied, answer lost)."""
    if ledger.in_flight != f"promote {pattern_id}":
        return False
    decision = get_decision(memory, credentials, pattern_id)
    return bool(decision and decision["decision"] == "promoted")


def expected(ledger: Ledger) -> Counter:
    """Each acknowledged write, counted once (a promoted pattern is checked as promoted, not staged)."""
    counts = Counter({kind: len(values) for kind, values in ledger.acked.items()})
    counts["staged"] -= len(ledger.acked["promoted"])
    return counts


def check(server) -> dict:
    traffic, restart_s = drive_and_kill(server)
    memory = RedisShortTermMemory(server.url)
    want, got = Counter(), Counter()
    for ledger in traffic.ledgers:
        want.update(expected(ledger))
        got.update(found_after_restart(memory, ledger))
    completed = AgentCoordinator(memory, TEAM).aggregate_results()["total_completed"]
    memory.client.close()
    return {"acked": traffic.acks, "checked": sum(want.values()), "found": sum(got.values()),
            "acked_by_kind": dict(want), "found_by_kind": dict(got), "total_completed_counter": completed,
            "in_flight": [ledger.in_flight for ledger in traffic.ledgers],
            "writes_per_s": round(traffic.acks / traffic.seconds), "restart_s": round(restart_s, 3)}


def test_it_runs_redis_with_the_shipped_production_settings(production_redis):
    client = redis.Redis(port=production_redis.port, decode_responses=True)
    settings = {name: client.config_get(name)[name] for name in
                ("appendonly", "appendfsync", "save", "maxmemory-policy", "no-appendfsync-on-rewrite",
                 "aof-load-truncated")}
    client.close()
    assert settings == {"appendonly": "yes", "appendfsync": "always", "save": "", "maxmemory-policy": "noeviction",
                        "no-appendfsync-on-rewrite": "no", "aof-load-truncated": "yes"}


def assert_every_acknowledged_write_kept(figures: dict) -> None:
    assert figures["acked"] >= ACKS_BEFORE_KILL
    assert figures["found_by_kind"] == figures["acked_by_kind"]
    # A completion in flight when Redis died may have been applied without its answer arriving.
    acked_completed = figures["acked_by_kind"]["completed"]
    in_flight_completions = sum(op.startswith("complete") for op in figures["in_flight"])
    assert acked_completed <= figures["total_completed_counter"] <= acked_completed + in_flight_completions


def test_it_keeps_every_acknowledged_write_through_a_redis_kill(production_redis):
    figures = check(production_redis)
    print("\ndurability (deploy/redis.conf):", figures)
    assert_every_acknowledged_write_kept(figures)


def test_it_keeps_acknowledged_writes_with_the_plain_aof_flags():
    """The same with the flags on the command line (the way the test servers are usually started)."""
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    try:
        figures = check(server)
    finally:
        server.stop()
    print("\ndurability (--appendonly yes --appendfsync always):", figures)
    assert_every_acknowledged_write_kept(figures)


def test_it_detects_lost_writes_when_persistence_is_off():
    """The control: without AOF or snapshots the same kill loses every write, and the check says so."""
    server = RedisServer()  # --appendonly no --save ""
    try:
        figures = check(server)
    finally:
        server.stop()
    print("\ndurability control (no persistence):", figures)
    assert figures["acked"] >= ACKS_BEFORE_KILL and figures["found"] == 0


# -- approved patterns and decisions live in the database ----------------------------------------------


@pytest.fixture
def site_on_private_redis(private_redis):
    """The site's memory on a redis-server of the test's own (the test kills it)."""
    memory = RedisShortTermMemory(private_redis.url)
    with memory_in_use(memory):
        yield private_redis, memory
    memory.client.close()


def observer_client() -> Client:
    return logged_in(tier_user("watcher", "observer"))


@pytest.mark.django_db
def test_it_serves_the_library_and_decisions_from_the_database_without_redis(site_on_private_redis):
    server, memory = site_on_private_redis
    agent = AgentCredentials("perf", AccessTier.CONTRIBUTOR, TEAM)
    validator = AgentCredentials("human-val", AccessTier.VALIDATOR, TEAM)
    memory.stage_pattern(agent, StagedPattern("p1", "perf", "optimization", "Eager loading", code="a()"))
    memory.stage_pattern(agent, StagedPattern("p2", "perf", "optimization", "Busy loop", code="b()"))
    library.promote(memory, validator, "p1", "good")
    library.reject(memory, validator, "p2", "too specific")
    browser = observer_client()

    server.kill()
    assert not memory.ping()
    page = browser.get("/patterns/library/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<article id="library-{TEAM}--p1"' in html and "Eager loading" in html and "memory offline" in html
    decisions = browser.get("/patterns/decisions/").content.decode()
    assert "p1" in decisions and "p2" in decisions and "too specific" in decisions
    assert [p.pattern_id for p in library.search(TEAM, "eager", count=False)] == ["p1"]

    server.start()  # no persistence: Redis comes back empty, the library does not care
    assert memory.ping() and memory.list_teams() == []
    html = browser.get("/patterns/library/").content.decode()
    assert f'<article id="library-{TEAM}--p1"' in html and "memory offline" not in html
    assert LibraryPattern.objects.get(team_id=TEAM, pattern_id="p1").promoted_by == "human-val"
    assert dict(PatternDecision.objects.values_list("pattern_id", "decision")) == {"p1": "promoted", "p2": "rejected"}

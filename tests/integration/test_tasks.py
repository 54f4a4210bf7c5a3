"""Task queue: priority order, atomic claims, leases, fencing, retries, exact results."""

import json
import threading

import pytest

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentTask,
    ConflictError,
    InvalidInputError,
    LeaseError,
    NotFoundError,
)

from tests.support import redis_calls, wait_until

from .helpers import creds


@pytest.fixture
def coord(memory):
    c = AgentCoordinator(memory, team_id="t1")
    c.register_agent("sec", ["security_review"])
    c.register_agent("perf", ["performance_review"])
    c.register_agent("both", ["security_review", "performance_review"])
    return c


def add(coord, task_id, task_type="security_review", priority=5, **kw):
    assert coord.add_task(AgentTask(task_id=task_id, task_type=task_type, priority=priority, **kw))


def test_it_claims_higher_priority_first_and_fifo_within_a_priority(coord):
    for task_id, priority in [("a5", 5), ("b9", 9), ("c5", 5), ("d9", 9), ("e1", 1)]:
        add(coord, task_id, priority=priority)
    order = [coord.claim_task("sec").task_id for _ in range(5)]
    assert order == ["b9", "d9", "a5", "c5", "e1"]
    assert coord.claim_task("sec") is None


def test_it_claims_by_registered_capabilities_across_types(coord):
    add(coord, "s1", "security_review", 3)
    add(coord, "p1", "performance_review", 7)
    add(coord, "x1", "style_review", 9)
    assert coord.claim_task("sec").task_id == "s1"
    assert coord.claim_task("sec") is None
    assert coord.claim_task("both").task_id == "p1"
    assert coord.claim_task("both") is None


def test_it_claims_a_given_type_even_outside_capabilities(coord):
    add(coord, "x1", "style_review")
    task = coord.claim_task("sec", "style_review")
    assert (task.task_id, task.status, task.assigned_to, task.attempts) == ("x1", "in_progress", "sec", 1)
    assert task.lease_expires_at > task.claimed_at


def test_it_refuses_an_unregistered_agent_without_a_type(coord):
    with pytest.raises(InvalidInputError, match="not registered"):
        coord.claim_task("stranger")


def test_it_does_not_add_a_task_twice(coord):
    add(coord, "t1")
    assert coord.add_task(AgentTask("t1", "security_review", description="other")) is False
    assert coord.get_task("t1").description == ""
    assert coord.count_tasks()["pending"] == 1


def test_it_adds_a_batch_in_one_round_trip(coord):
    add(coord, "warm")
    with redis_calls(coord.memory.client) as calls:
        flags = coord.add_tasks([AgentTask(f"b{i}", "security_review") for i in range(50)] + [AgentTask("warm", "x")])
    assert flags == [True] * 50 + [False]
    assert calls == ["EVALSHA"]


@pytest.mark.parametrize("bad", [
    dict(task_id="a:b", task_type="t"), dict(task_id="a", task_type="t t"), dict(task_id="a", task_type="t", priority=-1),
    dict(task_id="a", task_type="t", priority=1001), dict(task_id="a", task_type="t", priority=2.5),
    dict(task_id="a", task_type="t", context=[1]), dict(task_id="a", task_type="t", max_attempts=0),
])
def test_it_refuses_malformed_tasks(bad):
    with pytest.raises(InvalidInputError):
        AgentTask(**bad)


def test_it_completes_only_for_the_holder_and_exactly_once(coord):
    add(coord, "t1")
    task = coord.claim_task("sec")
    with pytest.raises(LeaseError, match="held by sec"):
        AgentCoordinator(coord.memory, "t1", creds("both")).complete_task("t1", {"x": 1}, agent_id="both")
    assert coord.complete_task("t1", {"found": 2}, agent_id="sec", lease_token=task.lease_token) == "sec"
    with pytest.raises(ConflictError, match="already completed"):
        coord.complete_task("t1", {"found": 3}, agent_id="sec")
    done = coord.get_task("t1")
    assert (done.status, done.result, done.assigned_to) == ("completed", {"found": 2}, "sec")
    assert coord.aggregate_results()["total_completed"] == 1


def test_it_lets_the_steward_complete_for_the_holder(coord):
    add(coord, "t1")
    coord.claim_task("sec")
    assert coord.complete_task("t1", {"ok": True}) == "sec"
    assert coord.aggregate_results()["by_agent"] == {"sec": 1}


def test_it_refuses_to_complete_unclaimed_or_unknown_tasks(coord):
    add(coord, "t1")
    with pytest.raises(LeaseError, match="not claimed"):
        coord.complete_task("t1", {})
    with pytest.raises(NotFoundError):
        coord.complete_task("nope", {})


def test_it_aggregates_exact_results(coord):
    for i in range(6):
        add(coord, f"s{i}", "security_review")
        add(coord, f"p{i}", "performance_review")
    for agent in ["sec", "sec", "perf", "both", "both", "both"]:
        t = coord.claim_task(agent)
        coord.complete_task(t.task_id, {"n": 1}, agent_id=agent)
    t = coord.claim_task("perf")
    coord.fail_task(t.task_id, "tool crashed", agent_id="perf")
    results = coord.aggregate_results()
    assert results["total_completed"] == 6
    assert results["by_agent"] == {"both": 3, "perf": 1, "sec": 2}
    assert sum(results["by_type"].values()) == 6
    assert results["total_failed"] == 1
    assert results["failed_by_type"] == {"performance_review": 1}


def test_it_fails_a_task_with_its_reason(coord):
    add(coord, "t1")
    coord.claim_task("sec")
    assert coord.fail_task("t1", "repository unreachable", agent_id="sec") == "failed"
    task = coord.get_task("t1")
    assert (task.status, task.reason) == ("failed", "repository unreachable")
    assert [t.task_id for t in coord.list_tasks("failed")] == ["t1"]
    with pytest.raises(InvalidInputError, match="reason"):
        add(coord, "t2")
        coord.claim_task("sec")
        coord.fail_task("t2", "  ", agent_id="sec")


def test_it_retries_a_failed_task_while_attempts_remain(coord):
    add(coord, "t1", max_attempts=2)
    coord.claim_task("sec")
    assert coord.fail_task("t1", "flaky", agent_id="sec", retry=True) == "pending"
    coord.claim_task("sec")
    assert coord.fail_task("t1", "flaky again", agent_id="sec", retry=True) == "failed"
    assert "gave up after 2 of 2 attempts" in coord.get_task("t1").reason


def test_it_returns_an_expired_lease_to_the_queue(coord):
    add(coord, "t1")
    first = coord.claim_task("sec", lease_seconds=0.05)
    # The agent dies mid-lease: no heartbeat, no completion. Another agent gets the task.
    second = wait_until(lambda: coord.claim_task("both"))
    assert (second.task_id, second.assigned_to, second.attempts) == ("t1", "both", 2)
    # The dead agent comes back and tries to complete: refused (fencing).
    with pytest.raises(LeaseError):
        coord.complete_task("t1", {"late": True}, agent_id="sec", lease_token=first.lease_token)
    coord.complete_task("t1", {"on_time": True}, agent_id="both", lease_token=second.lease_token)
    assert coord.get_task("t1").result == {"on_time": True}
    events = [e["event"] for e in coord.get_task_history("t1")]
    assert events == ["added", "claimed", "requeued", "claimed", "completed"]


def test_it_refuses_a_late_completion_before_the_reaper_runs(coord):
    add(coord, "t1")
    coord.claim_task("sec", lease_seconds=0.05)
    wait_until(lambda: coord.get_task("t1").lease_expires_at * 1000 < coord.memory.client.time()[0] * 1000 - 100)
    with pytest.raises(LeaseError, match="expired"):
        coord.complete_task("t1", {}, agent_id="sec")
    assert coord.aggregate_results()["total_completed"] == 0


def test_it_fails_a_task_after_max_attempts_of_expired_leases(coord):
    add(coord, "t1", max_attempts=2)
    coord.claim_task("sec", lease_seconds=0.03)
    wait_until(lambda: coord.claim_task("sec", lease_seconds=0.03))
    wait_until(lambda: coord.reap_expired_leases() == 1)
    task = coord.get_task("t1")
    assert task.status == "failed"
    assert "lease expired" in task.reason and "2 of 2 attempts" in task.reason
    assert coord.claim_task("sec") is None
    assert coord.aggregate_results()["total_failed"] == 1


def test_it_renews_leases_on_heartbeat(coord):
    add(coord, "t1")
    add(coord, "t2")
    t1 = coord.claim_task("sec", lease_seconds=5)
    coord.claim_task("sec", lease_seconds=5)
    assert coord.heartbeat("sec", lease_seconds=60) == 2
    assert coord.get_task("t1").lease_expires_at > t1.lease_expires_at + 50
    new_expiry = coord.extend_lease("t1", agent_id="sec", lease_seconds=120)
    assert coord.get_task("t1").lease_expires_at == pytest.approx(new_expiry)


def test_it_refuses_a_stale_lease_token(coord):
    add(coord, "t1")
    coord.claim_task("sec")
    with pytest.raises(LeaseError, match="stale"):
        coord.complete_task("t1", {}, agent_id="sec", lease_token="7")


def test_it_lists_tasks_by_status(coord):
    add(coord, "low", priority=1)
    add(coord, "high", priority=9)
    add(coord, "mid", priority=5)
    coord.claim_task("sec")
    assert [t.task_id for t in coord.list_tasks("pending")] == ["mid", "low"]
    assert [t.task_id for t in coord.list_tasks("in_progress")] == ["high"]
    assert coord.count_tasks() == {"pending": 2, "in_progress": 1, "completed": 0, "failed": 0}
    with pytest.raises(InvalidInputError):
        coord.list_tasks("done")


def test_it_trims_finished_tasks_but_keeps_counters(memory_factory):
    from empathy_os.defaults import Config

    memory = memory_factory(config=Config(finished_task_retention_count=3))
    coord = AgentCoordinator(memory, "t1")
    coord.add_tasks([AgentTask(f"t{i}", "x") for i in range(32)])
    for _ in range(32):  # the trim runs on every 16th finish
        coord.complete_task(coord.claim_task("w", "x").task_id, {})
    assert [t.task_id for t in coord.list_tasks("completed")] == ["t31", "t30", "t29"]
    assert coord.get_task("t0") is None
    assert coord.aggregate_results()["total_completed"] == 32


def test_it_lists_registered_agents_with_capabilities(coord):
    assert coord.get_active_agents() == ["both", "perf", "sec"]
    agents = {a["agent_id"]: a for a in coord.get_agents()}
    assert agents["sec"]["capabilities"] == ["security_review"]
    assert agents["sec"]["active"] is True


def test_it_gives_each_task_to_one_of_many_racing_threads(coord):
    coord.add_tasks([AgentTask(f"r{i}", "security_review") for i in range(200)])
    claimed = []

    def worker(name):
        c = AgentCoordinator(coord.memory, "t1", creds(name, team="t1"))
        while (task := c.claim_task(name, "security_review")) is not None:
            c.complete_task(task.task_id, {"by": name}, agent_id=name)
            claimed.append(task.task_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(f"r{i}" for i in range(200))
    assert coord.aggregate_results()["total_completed"] == 200


def test_it_lets_contributors_act_only_as_themselves(coord):
    add(coord, "t1")
    as_perf = AgentCoordinator(coord.memory, "t1", creds("perf"))
    with pytest.raises(PermissionError):
        as_perf.claim_task("sec")
    with pytest.raises(PermissionError):
        as_perf.register_agent("sec", ["anything"])
    coord.claim_task("sec")
    with pytest.raises(LeaseError):
        as_perf.complete_task("t1", {})  # acts as itself, and does not hold t1
    observer = AgentCoordinator(coord.memory, "t1", creds("obs", AccessTier.OBSERVER))
    with pytest.raises(PermissionError):
        observer.add_task(AgentTask("t9", "x"))
    assert observer.aggregate_results()["total_completed"] == 0


def test_it_returns_the_leases_of_a_restarted_agent_to_the_queue(memory):
    # A process that died holding a lease, replaced by one with the same agent id: the new process's
    # heartbeats must not keep the dead one's task in progress for ever.
    coordinator = AgentCoordinator(memory, "t1")
    coordinator.register_agent("worker", ["x"])
    coordinator.add_task(AgentTask("t1", "x"))
    assert coordinator.claim_task("worker", "x").task_id == "t1"

    assert coordinator.register_agent("worker", ["x"]) == 1  # the restarted process
    coordinator.heartbeat("worker")
    task = coordinator.get_task("t1")
    assert task.status == "pending" and "registered again" in task.reason
    again = coordinator.claim_task("worker", "x")
    assert again.task_id == "t1" and again.attempts == 2
    assert coordinator.register_agent("worker", ["x"]) == 1
    assert coordinator.register_agent("worker", ["x"]) == 0


# -- lease history in the task hash ------------------------------------------------------------------


def test_it_keeps_the_last_50_history_entries_after_60_retries(coord):
    add(coord, "t1", max_attempts=100)
    for attempt in range(1, 61):
        claimed = coord.claim_task("sec")
        assert claimed.attempts == attempt
        assert coord.fail_task("t1", f"retry {attempt}", agent_id="sec", retry=True) == "pending"
    history = coord.get_task_history("t1")
    # 121 entries written (added, then claimed + requeued per attempt): the last 50 are kept, in order.
    assert len(history) == 50
    assert (history[0]["event"], history[0]["attempt"]) == ("claimed", 36)
    assert history[-1] == {"event": "requeued", "agent": "sec", "attempt": 60, "reason": "retry 60",
                           "at": history[-1]["at"]}
    assert [e["attempt"] for e in history[1:]] == [a for a in range(36, 61) for _ in (0, 1)][1:]
    raw = coord.memory.client.hgetall(coord.memory.team("t1").task("t1"))
    assert sorted(int(f[4:]) for f in raw if f.startswith("log:")) == list(range(72, 122))
    assert raw["log_n"] == "121"


def test_it_returns_a_claimed_task_without_its_history_fields(coord, memory):
    add(coord, "t1", description="d", context={"k": 1})
    assert coord.claim_task("sec", "nothing_of_this_type") is None  # the script is loaded now
    with redis_calls(memory.client) as calls:
        claimed = coord.claim_task("sec")
    assert calls == ["EVALSHA"]
    assert claimed == coord.get_task("t1")
    assert claimed.to_dict()["context"] == {"k": 1}
    # The reply itself: the task's fields, no log_n / log:<n>.
    k = memory.team("t1")
    coord.fail_task("t1", "again", agent_id="sec", retry=True)
    flat = memory.run("task_claim", k, (k.agents, k.agents_seen), (*coord._task_args(), "sec", 60000, "", ""))
    names = flat[::2]
    assert "task_id" in names and not [n for n in names if n.startswith("log")]
    assert dict(zip(names, flat[1::2]))["reason"] == "again"


def test_it_escapes_a_free_text_reason_in_the_history(coord):
    add(coord, "t1")
    coord.claim_task("sec")
    reason = 'quote " backslash \\ newline \n unicode é ✓'
    coord.fail_task("t1", reason, agent_id="sec")
    assert coord.get_task_history("t1")[-1]["reason"] == reason


def old_format_task(memory, team_id, task_id, task_type="security_review"):
    """A pending task as the scripts before 2026-12-03 wrote it: no history fields in the hash, its history
    in the list ``task:<id>:log``."""
    k, client = memory.team(team_id), memory.client
    now = int(client.time()[0]) * 1000
    score = -5 * 1099511627776 + client.incr(k.seq)
    client.hset(k.task(task_id), mapping={
        "task_id": task_id, "task_type": task_type, "description": "old", "priority": "5", "context": "{}",
        "max_attempts": "3", "status": "pending", "attempts": "0", "created_at": str(now),
        "created_by": "coordinator", "score": str(score)})
    client.zadd(k.pending_of(task_type), {task_id: score})
    client.zadd(k.pending, {task_id: score})
    client.rpush(k.task_log(task_id), json.dumps({"event": "added", "agent": "coordinator", "at": now}))


def test_a_task_written_by_the_old_scripts_keeps_its_history_in_its_list(coord, memory):
    old_format_task(memory, "t1", "old1")
    claimed = coord.claim_task("sec")
    assert claimed.task_id == "old1"
    coord.fail_task("old1", "once more", agent_id="sec", retry=True)
    claimed = coord.claim_task("sec")
    coord.complete_task("old1", {"ok": True}, agent_id="sec", lease_token=claimed.lease_token)
    history = coord.get_task_history("old1")
    assert [e["event"] for e in history] == ["added", "claimed", "requeued", "claimed", "completed"]
    assert history[2]["reason"] == "once more" and history[-1]["attempt"] == 2
    k = memory.team("t1")
    assert not [f for f in memory.client.hkeys(k.task("old1")) if f.startswith("log")]
    assert memory.client.llen(k.task_log("old1")) == 5
    # Finished: the list expires with the record.
    assert 0 < memory.client.ttl(k.task_log("old1")) <= memory.config.finished_task_retention_seconds
    assert 0 < memory.client.ttl(k.task("old1")) <= memory.config.finished_task_retention_seconds


def test_a_new_task_has_no_history_list(coord, memory):
    add(coord, "t1")
    coord.complete_task("t1", {}, agent_id="sec", lease_token=coord.claim_task("sec").lease_token)
    assert not memory.client.exists(memory.team("t1").task_log("t1"))
    assert [e["event"] for e in coord.get_task_history("t1")] == ["added", "claimed", "completed"]

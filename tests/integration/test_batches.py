"""Batches: add_tasks, claim_tasks, complete_tasks: one round trip each, the same exactly-once rules."""

import threading

import pytest

from empathy_os import AgentCoordinator, AgentTask, ConflictError, InvalidInputError, LeaseError, NotFoundError
from empathy_os.aio import AsyncAgentCoordinator

from tests.support import redis_calls


@pytest.fixture
def coord(memory):
    c = AgentCoordinator(memory, team_id="t1")
    c.register_agent("w1", ["review"])
    return c


def test_it_claims_the_n_best_tasks_in_claim_order_in_one_round_trip(coord):
    coord.add_tasks([AgentTask(f"t{i}", "review", priority=i % 3) for i in range(6)])
    assert coord.claim_tasks("w1", 3, "other_type") == []  # the script is loaded (once per server)
    with redis_calls(coord.memory.client) as calls:
        claimed = coord.claim_tasks("w1", 4)  # by capabilities
    assert calls == ["EVALSHA"]
    assert [t.task_id for t in claimed] == ["t2", "t5", "t1", "t4"]
    assert {(t.status, t.assigned_to, t.attempts) for t in claimed} == {("in_progress", "w1", 1)}
    assert [t.task_id for t in coord.claim_tasks("w1", 10, "review")] == ["t0", "t3"]
    assert coord.claim_tasks("w1", 10, "review") == []
    assert [e["event"] for e in coord.get_task_history("t2")] == ["added", "claimed"]
    assert coord.count_tasks()["in_progress"] == 6


def test_it_completes_a_batch_in_one_round_trip_and_reports_each_task_on_its_own(coord):
    coord.add_tasks([AgentTask(f"t{i}", "review") for i in range(4)])
    a, b, c, d = coord.claim_tasks("w1", 4, "review")
    coord.complete_task(d.task_id, None, "w1")
    with redis_calls(coord.memory.client) as calls:
        replies = coord.complete_tasks([(a.task_id, {"ok": 1}, a.lease_token), b, (c.task_id, None, "99"),
                                        (d.task_id, None), ("missing", None)], "w1")
    assert calls == ["EVALSHA"]
    assert replies[:2] == ["w1", "w1"]
    assert isinstance(replies[2], LeaseError) and "stale" in str(replies[2])
    assert isinstance(replies[3], ConflictError) and "already completed" in str(replies[3])
    assert isinstance(replies[4], NotFoundError)
    assert coord.get_task(a.task_id).result == {"ok": 1}
    assert coord.aggregate_results()["total_completed"] == 3
    assert [e["event"] for e in coord.get_task_history(a.task_id)] == ["added", "claimed", "completed"]


def test_it_never_completes_a_task_twice_across_batches(coord):
    coord.add_tasks([AgentTask(f"t{i}", "review") for i in range(3)])
    claimed = coord.claim_tasks("w1", 3, "review")
    assert coord.complete_tasks(claimed, "w1") == ["w1"] * 3
    again = coord.complete_tasks(claimed, "w1")
    assert all(isinstance(r, ConflictError) for r in again)
    assert coord.aggregate_results()["total_completed"] == 3


def test_it_refuses_the_batch_of_another_holder(memory, coord):
    coord.add_tasks([AgentTask("t1", "review")])
    task = coord.claim_tasks("w1", 1, "review")[0]
    other = AgentCoordinator(memory, "t1")
    [reply] = other.complete_tasks([task], "w2")
    assert isinstance(reply, LeaseError) and "held by w1" in str(reply)
    assert coord.get_task("t1").status == "in_progress"


def test_it_hands_each_task_to_exactly_one_of_racing_batch_claims(memory_factory):
    memory = memory_factory()
    AgentCoordinator(memory, "t1").add_tasks([AgentTask(f"t{i}", "review") for i in range(200)])
    got, lock = [], threading.Lock()

    def worker(n):
        coord = AgentCoordinator(memory_factory(), "t1")
        while batch := coord.claim_tasks(f"w{n}", 7, "review"):
            replies = coord.complete_tasks(batch, f"w{n}")
            assert replies == [f"w{n}"] * len(batch)
            with lock:
                got.extend(t.task_id for t in batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(f"t{i}" for i in range(200))  # none lost, none twice
    assert AgentCoordinator(memory, "t1").aggregate_results()["total_completed"] == 200


@pytest.mark.parametrize("n", [0, 1001, True, "3"])
def test_it_refuses_a_bad_batch_size(coord, n):
    with pytest.raises(InvalidInputError, match="from 1 to 1000"):
        coord.claim_tasks("w1", n)


def test_it_refuses_bad_completions(coord):
    with pytest.raises(InvalidInputError, match="twice"):
        coord.complete_tasks([("t1", None), ("t1", None)], "w1")
    with pytest.raises(InvalidInputError, match="a completion is"):
        coord.complete_tasks(["t1"], "w1")
    with pytest.raises(InvalidInputError, match="from 1 to 1000"):
        coord.complete_tasks([], "w1")


async def test_it_batches_on_the_asyncio_twin_too(memory, coord):
    coord.add_tasks([AgentTask(f"t{i}", "review") for i in range(3)])
    aio = AsyncAgentCoordinator(memory.aio, "t1")
    claimed = await aio.claim_tasks("w1", 5, "review")
    assert [t.task_id for t in claimed] == ["t0", "t1", "t2"]
    assert await aio.complete_tasks(claimed, "w1") == ["w1"] * 3
    assert coord.aggregate_results()["total_completed"] == 3

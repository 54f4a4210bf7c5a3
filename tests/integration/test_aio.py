"""The asyncio twin (``memory.aio``): same scripts, keys and errors as the sync memory, on the same data."""

import asyncio
import gc

import pytest

from empathy_os import AgentCoordinator, AgentTask, ConflictError, LeaseError, NotFoundError, StagedPattern
from empathy_os.aio import AsyncAgentCoordinator, AsyncTeamSession, get_session_info

from .helpers import creds


@pytest.fixture
def both(memory):
    """The sync coordinator and its async twin on the same memory, team t1."""
    return AgentCoordinator(memory, "t1"), AsyncAgentCoordinator(memory.aio, "t1")


async def test_it_sees_what_the_sync_memory_wrote_and_the_other_way_round(memory):
    agent = creds("a1")
    memory.stash(agent, "k", {"v": 1})
    assert await memory.aio.retrieve(agent, "k") == {"v": 1}
    await memory.aio.stash(agent, "k2", [1, 2])
    assert memory.retrieve(agent, "k2") == [1, 2]
    assert await memory.aio.forget(agent, "k2") is True
    assert memory.retrieve(agent, "k2") is None


async def test_it_claims_and_completes_a_task_added_by_the_sync_library(both):
    sync, aio = both
    sync.add_task(AgentTask("t-1", "review", priority=3))
    task = await aio.claim_task("w1", "review")
    assert task.task_id == "t-1" and task.assigned_to == "w1" and task.status == "in_progress"
    assert await aio.complete_task("t-1", {"ok": True}, "w1", lease_token=task.lease_token) == "w1"
    assert sync.get_task("t-1").status == "completed"
    assert (await aio.aggregate_results())["by_agent"] == {"w1": 1}
    assert [e["event"] for e in await aio.get_task_history("t-1")] == ["added", "claimed", "completed"]


async def test_it_raises_the_sync_librarys_errors(both):
    sync, aio = both
    await aio.add_task(AgentTask("t-1", "review"))
    await aio.claim_task("w1", "review")
    with pytest.raises(LeaseError):
        await aio.complete_task("t-1", None, "w2")
    with pytest.raises(NotFoundError):
        await aio.complete_task("nope", None, "w1")
    sync.complete_task("t-1", None, "w1")
    with pytest.raises(ConflictError):
        await aio.complete_task("t-1", None, "w1")


async def test_it_hands_each_task_to_one_of_many_concurrent_claims(both):
    sync, aio = both
    sync.add_tasks(AgentTask(f"t{i}", "review") for i in range(10))
    claims = await asyncio.gather(*(aio.claim_task(f"w{i}", "review") for i in range(25)))
    ids = [t.task_id for t in claims if t is not None]
    assert sorted(ids) == sorted(f"t{i}" for i in range(10))
    assert claims.count(None) == 15


async def test_it_wakes_a_waiting_receiver_when_a_signal_arrives(memory):
    reader, sender = creds("reader"), creds("sender")
    waiter = asyncio.ensure_future(memory.aio.receive_signals(reader, "ping", wait=5))
    await asyncio.sleep(0)  # the waiter runs its first script and blocks on the streams
    await memory.aio.send_signal(sender, "ping", {"n": 1}, "reader")
    got = await waiter
    assert [(s["sender"], s["data"]) for s in got] == [("sender", {"n": 1})]
    assert await memory.aio.receive_signals(reader, "ping") == []


async def test_it_opens_joins_and_shares_a_session(memory):
    session = AsyncTeamSession(memory.aio, "s1", "review", team_id="t1", credentials=creds("a1"))
    assert await session.open() is True
    assert await AsyncTeamSession(memory.aio, "s1", team_id="t1", credentials=creds("a2")).open() is False
    await session.add_agent("a1")
    await session.share("plan", {"step": 1})
    assert await session.get("plan") == {"step": 1}
    info = await get_session_info(memory.aio, "t1", "s1")
    assert info["participants"] == ["a1"] and info["context_keys"] == ["plan"]


async def test_it_stages_and_lists_patterns(memory):
    agent = creds("a1")
    pattern = StagedPattern(pattern_id="p1", agent_id="a1", pattern_type="t", name="n", description="d")
    assert await memory.aio.stage_pattern(agent, pattern) is True
    assert [p.pattern_id for p in memory.get_staged_patterns(agent)] == ["p1"]
    assert [p.pattern_id for p in await memory.aio.get_staged_patterns(agent)] == ["p1"]


def test_it_keeps_a_client_per_event_loop_and_closes_it_with_the_loop(memory):
    agent = creds("a1")

    async def round_trip(n):
        await memory.aio.stash(agent, "k", n)
        return await memory.aio.retrieve(agent, "k")

    assert [asyncio.run(round_trip(n)) for n in range(3)] == [0, 1, 2]
    gc.collect()  # an unclosed connection would warn here (warnings are errors)
    assert len(memory.aio._clients) == 0

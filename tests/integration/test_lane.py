"""The script calls' own connections (``empathy_os.aio.Lane``, redis mode): reused after an error
reply, never after a failure or an interruption, bounded, and closed with their loop."""

import asyncio

import pytest
import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from empathy_os import AgentCoordinator, AgentTask, LeaseError, MemoryUnavailableError
from empathy_os.aio import AsyncAgentCoordinator, Lane
from empathy_os.redis_memory import RedisShortTermMemory
from tests.support import RedisServer


@pytest.fixture
def lane_of(redis_url):
    def make(limit=4, wait=5.0):
        pool = redis.asyncio.ConnectionPool.from_url(redis_url, decode_responses=True, socket_timeout=5)
        return Lane(pool, limit, wait)

    return make


async def test_an_error_reply_leaves_the_connection_in_use(lane_of):
    lane = lane_of()
    assert await lane.execute("SET", "not-a-number-x", "abc") == "OK"
    with pytest.raises(ResponseError):
        await lane.execute("INCR", "not-a-number-x")
    assert await lane.execute("PING") == "PONG"
    assert len(lane.open) == 1 and len(lane.idle) == 1
    await lane.aclose()


async def test_a_broken_connection_is_dropped_and_the_next_call_opens_another(lane_of, redis_url):
    lane = lane_of()
    assert await lane.execute("CLIENT", "SETNAME", "lane-test") == "OK"
    with redis.Redis.from_url(redis_url) as killer:
        assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    with pytest.raises((RedisConnectionError, OSError)):
        await lane.execute("PING")
    assert not lane.open and not lane.idle
    assert await lane.execute("PING") == "PONG"
    assert len(lane.open) == 1
    await lane.aclose()


async def test_an_interrupted_call_does_not_leave_its_reply_for_the_next(lane_of):
    lane = lane_of()
    call = asyncio.ensure_future(lane.execute("BLPOP", "nothing-here", "1"))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not lane.open  # its reply (nil, in up to 1 s) would have answered the next command
    assert await lane.execute("ECHO", "mine") == "mine"
    await lane.aclose()


async def test_it_keeps_at_most_limit_commands_in_flight_and_a_later_one_waits_then_gives_up(lane_of):
    lane = lane_of(limit=2, wait=1.0)
    replies = await asyncio.gather(*(lane.execute("BLPOP", f"none-{i}", "0.05") for i in range(6)))
    assert replies == [None] * 6 and len(lane.open) == 2
    slow = [asyncio.ensure_future(lane.execute("BLPOP", "none", "3")) for _ in range(2)]
    while not lane.slots.locked():
        await asyncio.sleep(0.01)
    with pytest.raises(RedisConnectionError, match="no free connection"):
        await lane.execute("PING")
    await asyncio.gather(*slow)
    assert await lane.execute("PING") == "PONG"
    await lane.aclose()
    assert not lane.open


def test_the_memorys_scripts_go_through_it_and_it_closes_with_the_loop(redis_url):
    memory = RedisShortTermMemory(url=redis_url)
    coordinator = AsyncAgentCoordinator(memory.aio, "t1")
    lanes = []

    async def work():
        await coordinator.add_tasks([AgentTask("a", "build")])
        task = await coordinator.claim_task("w1", "build")
        with pytest.raises(LeaseError):
            await coordinator.complete_task("a", {}, "w1", lease_token="99")
        await coordinator.complete_task("a", {}, "w1", lease_token=task.lease_token)
        lane = memory.aio._clients[asyncio.get_running_loop()][3]
        assert isinstance(lane, Lane) and len(lane.open) == 1  # one connection did all four, error and all
        lanes.append(lane)

    asyncio.run(work())
    assert not lanes[0].open  # closed by the loop's shutdown
    assert AgentCoordinator(memory, "t1").get_task("a").status == "completed"
    memory.client.close()


def test_connections_the_server_closed_while_idle_are_not_used_and_a_dead_redis_is_unavailable():
    server = RedisServer()  # its own: this test kills it
    url = server.url
    memory = RedisShortTermMemory(url=url)
    coordinator = AsyncAgentCoordinator(memory.aio, "t1")

    async def work():
        await coordinator.add_tasks([AgentTask("a", "build")])
        with redis.Redis.from_url(url) as killer:
            killer.client_kill_filter(_type="normal", skipme=True)
        await asyncio.sleep(0.05)  # the loop reads the end of the killed connection's stream
        assert (await coordinator.claim_task("w1", "build")).task_id == "a"  # on a fresh connection
        server.kill()
        with pytest.raises(MemoryUnavailableError):
            await coordinator.add_tasks([AgentTask("b", "build")])

    try:
        asyncio.run(work())
    finally:
        memory.client.close()
        server.stop()


async def test_a_large_command_goes_whole_and_small_ones_after_it_too(lane_of):
    from empathy_os.aio import SMALL_WRITE

    lane = lane_of()
    big = "x" * (4 * SMALL_WRITE)
    assert await lane.execute("SET", "big", big) == "OK"
    assert await lane.execute("STRLEN", "big") == len(big)
    assert await lane.execute("ECHO", "small") == "small"
    assert len(lane.open) == 1
    await lane.aclose()

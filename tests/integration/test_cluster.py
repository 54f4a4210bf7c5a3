"""What only a Redis Cluster can get wrong: teams spread over several masters, server-wide figures
summed over every master, and each team's keys kept in one slot (so its scripts may run there).

The behavioural tests of this package run on the cluster too (the ``backend`` fixture); these add
checks that need to look at the nodes one by one.
"""

import os

import pytest
import redis
from redis.crc import key_slot

from empathy_os import (
    AgentCoordinator,
    AgentTask,
    InvalidInputError,
    MemoryUnavailableError,
    RedisShortTermMemory,
    get_redis_memory,
)
from empathy_os.events import EventReader
from empathy_os.keys import team_index_keys
from empathy_os.patterns import StagedPattern
from tests.support import RedisClusterServer

from .helpers import creds


@pytest.fixture
def memory(cluster_url):
    """The library on the session's Redis Cluster (3 masters), flushed."""
    memory = RedisShortTermMemory(cluster_url)
    yield memory
    memory.client.close()


@pytest.fixture
def node_clients(redis_cluster):
    """A plain client per master, to see what each one holds."""
    clients = [redis.Redis(port=node.port, decode_responses=True) for node in redis_cluster.nodes]
    yield clients
    for client in clients:
        client.close()


def teams_on_every_master(memory, per_master: int = 1) -> list[str]:
    """Team ids whose slots are served by each of the masters (``per_master`` teams each)."""
    by_node: dict[str, list[str]] = {}
    i = 0
    while len(by_node) < 3 or min(len(teams) for teams in by_node.values()) < per_master:
        team = f"team{i}"
        node = memory.client.get_node_from_key(memory.team(team).events).name
        by_node.setdefault(node, [])
        if len(by_node[node]) < per_master:
            by_node[node].append(team)
        i += 1
    return [team for teams in by_node.values() for team in teams]


def busy_team(memory, team: str) -> None:
    """Touch every kind of key of a team: memory, tasks, signals, sessions, patterns, conflicts."""
    me = creds("a", team=team)
    memory.stash(me, "k", {"v": 1})
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("a", ["x"])
    coordinator.add_tasks([AgentTask("t1", "x"), AgentTask("t2", "x")])
    task = coordinator.claim_task("a")
    coordinator.complete_task(task.task_id, {"ok": True}, agent_id="a", lease_token=task.lease_token)
    memory.send_signal(me, "ping", {"n": 1})
    memory.send_signal(me, "direct", {"n": 2}, target_agent="b")
    memory.receive_signals(creds("b", team=team))
    memory.persist_state(me, "s1", {"step": 1})
    memory.stage_pattern(me, StagedPattern(pattern_id="p1", agent_id="a", pattern_type="x", name="n",
                                           description="d", confidence=0.5))
    memory.create_conflict_context(me, "c1", {"a": "yes", "b": "no"})


def test_it_spreads_teams_over_every_master(memory, node_clients):
    teams = teams_on_every_master(memory)
    for team in teams:
        busy_team(memory, team)
    assert all(client.dbsize() > 0 for client in node_clients)
    assert sorted(memory.list_teams()) == sorted(teams)


def test_it_keeps_every_key_of_a_team_in_one_slot(memory, node_clients):
    teams = teams_on_every_master(memory)
    for team in teams:
        busy_team(memory, team)
    slots: dict[str, set[int]] = {team: set() for team in teams}
    for client in node_clients:
        for key in client.scan_iter(count=500):
            for team in teams:
                if key.startswith(memory.team(team).base):
                    slots[team].add(key_slot(key.encode()))
    assert all(len(found) == 1 for found in slots.values()), slots
    assert len({next(iter(found)) for found in slots.values()}) == len(teams)


def test_it_counts_keys_and_memory_on_every_master(memory, node_clients):
    for team in teams_on_every_master(memory):
        busy_team(memory, team)
    stats = memory.get_stats()
    per_node = [client.dbsize() for client in node_clients]
    assert stats["keys"] == sum(per_node)
    assert stats["keys"] > max(per_node)
    used = [client.info("memory")["used_memory"] for client in node_clients]
    # Each master's figure moves a little between the two reads; the sum is far above any one node.
    assert float(stats["memory_used"].rstrip("M")) * 1048576 > max(used) * 2
    assert stats["teams"] == 3 and stats["tasks_completed"] == 3 and stats["tasks_pending"] == 3


def test_it_relays_the_events_of_teams_on_every_master(memory):
    teams = teams_on_every_master(memory, per_master=2)
    for team in teams:
        AgentCoordinator(memory, team).register_agent("a", ["x"])
    first, second = EventReader(memory, consumer="r1"), EventReader(memory, consumer="r2")
    assert first.read(block_ms=10) == [] and second.read(block_ms=10) == []
    for team in teams:
        AgentCoordinator(memory, team).add_tasks([AgentTask(f"{team}-t{i}", "x") for i in range(3)])
    got = first.read(block_ms=10) + second.read(block_ms=10)
    assert sorted(f["task"] for _, _, f in got) == sorted(f"{team}-t{i}" for team in teams for i in range(3))
    assert all(team == f["task"].split("-")[0] for team, _, f in got)
    first.ack(got)
    assert all(memory.client.xpending(memory.team(team).events, "relay")["pending"] == 0 for team in teams)


def open_sockets() -> set[str]:
    """The sockets this process holds open (their inodes, from /proc)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, gone already
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_it_finds_the_cluster_by_url_scheme_or_by_redis_cluster(redis_cluster, cluster_url, monkeypatch, caplog):
    plain = f"redis://127.0.0.1:{redis_cluster.nodes[1].port}/0"  # any node will do
    monkeypatch.delenv("EMPATHY_REDIS_MOCK", raising=False)
    monkeypatch.setenv("REDIS_URL", cluster_url)
    with caplog.at_level("INFO", logger="empathy_os"):
        by_scheme = get_redis_memory()
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    by_variable = RedisShortTermMemory(plain)
    try:
        assert (by_scheme.mode, by_variable.mode) == ("cluster", "cluster")
        assert [r.getMessage() for r in caplog.records] == [f"empathy_os: cluster mode at {cluster_url}"]
        by_scheme.stash(creds("a"), "k", {"v": 1})
        assert by_variable.retrieve(creds("a"), "k") == {"v": 1}
    finally:
        by_scheme.client.close()
        by_variable.client.close()


def test_it_closes_its_connection_to_every_master(cluster_url):
    before = open_sockets()
    memory = RedisShortTermMemory(cluster_url)
    for team in teams_on_every_master(memory):
        AgentCoordinator(memory, team).register_agent("a", ["x"])
    opened = open_sockets() - before
    assert len(opened) == 3  # one connection per master
    memory.client.close()
    assert opened & open_sockets() == set()


def test_it_says_clearly_when_the_cluster_does_not_answer_or_the_url_is_wrong(redis_cluster):
    with pytest.raises(MemoryUnavailableError, match="Redis Cluster at redis://127.0.0.1:1/0 did not answer"):
        RedisShortTermMemory("redis+cluster://127.0.0.1:1/0")
    with pytest.raises(InvalidInputError, match="database 0 only"):
        RedisShortTermMemory(f"redis+cluster://127.0.0.1:{redis_cluster.nodes[0].port}/3")


def test_it_keeps_the_teams_of_the_other_masters_working_while_one_master_is_down():
    # A cluster of its own (the session's stays whole), slow to declare a node failed (60 s), so the
    # cluster stays up while one master is away, as it would before a replica takes over.
    cluster = RedisClusterServer(node_timeout_ms=60_000)
    memory = None
    try:
        memory = RedisShortTermMemory(cluster.url)
        teams = teams_on_every_master(memory)

        def node_of(key):
            return memory.client.get_node_from_key(key).port

        shards = [node_of(key) for key in team_index_keys(memory.config.key_prefix)]
        assert len(set(shards)) == 3  # the team index is on every master: none is needed by all teams
        victim = max(cluster.nodes, key=lambda node: shards.count(node.port))  # the most shards
        on_victim = [t for t in teams if node_of(memory.team(t).events) == victim.port]
        elsewhere = [t for t in teams if t not in on_victim]
        for team in teams:
            AgentCoordinator(memory, team).register_agent("a", ["x"])
        relay = EventReader(memory, teams_refresh_s=0)
        relay.read(block_ms=1)  # knows every team from now on
        newcomer = next(f"new{i}" for i in range(1000) if node_of(memory.team(f"new{i}").events) != victim.port)
        victim.kill()

        for team in elsewhere:  # the first task of each: its script is loaded on that master only
            assert AgentCoordinator(memory, team).add_task(AgentTask("t1", "x"))
        for team in on_victim:
            with pytest.raises(MemoryUnavailableError):
                AgentCoordinator(memory, team).add_task(AgentTask("t1", "x"))
        # A team that appears now registers, and the relay finds it and relays its first events.
        AgentCoordinator(memory, newcomer).register_agent("n", ["x"])
        listed = memory.list_teams()
        assert set(elsewhere) | {newcomer} <= set(listed) and not set(on_victim) & set(listed)
        relayed = [(team, fields["kind"]) for team, _, fields in relay.read(block_ms=1)]
        assert (newcomer, "agent.registered") in relayed
        assert {(team, "task.added") for team in elsewhere} <= set(relayed)

        victim.start()
        cluster.wait_ok()
        for team in on_victim:
            assert AgentCoordinator(memory, team).add_task(AgentTask("t1", "x"))
        assert sorted(memory.list_teams()) == sorted([*teams, newcomer])
        assert memory.get_stats()["tasks_pending"] == len(teams)
    finally:
        if memory is not None:
            memory.client.close()
        cluster.stop()

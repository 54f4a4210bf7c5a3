"""One read of every team (empathy_os.overview) and the sharded team index (empathy_os.team_index)."""

from __future__ import annotations

from empathy_os import AgentCoordinator, AgentTask, team_index
from empathy_os.keys import TEAM_INDEX_SHARDS, team_index_keys, team_index_shard
from empathy_os.overview import read_overview
from tests.support import busy_team, redis_calls


def test_it_reads_what_get_stats_and_get_retention_usage_read(memory):
    for team in ("alpha", "beta", "gamma"):
        busy_team(memory, team)
    AgentCoordinator(memory, "beta").register_agent("idle", ["x"])
    overview = read_overview(memory, recent_tasks=10)
    stats = memory.get_stats()
    assert {k: v for k, v in overview["stats"].items() if k != "memory_used"} == {
        k: v for k, v in stats.items() if k != "memory_used"}
    assert overview["usage"]["teams"] == memory.get_retention_usage()["teams"]
    assert overview["complete"] is True
    rows = {row["team_id"]: row for row in overview["teams"]}
    assert [row["team_id"] for row in overview["teams"]] == memory.list_teams()
    beta = rows["beta"]
    assert (beta["agents"], beta["active_agents"]) == (2, 2)
    assert beta["tasks"] == {"pending": 1, "in_progress": 0, "completed": 2, "failed": 1}
    assert (beta["completed_total"], beta["failed_total"], beta["patterns_staged"]) == (2, 1, 1)
    assert beta["usage"]["inbox_max"] == 1
    assert len(beta["recent_tasks"]) == 3  # the finished ones (none in progress)
    assert all(t["attempts"] == 1 and t["claimed_at"] >= t["created_at"] for t in beta["recent_tasks"])


def test_it_reads_only_the_teams_asked_for_and_no_server_figures(memory):
    busy_team(memory, "alpha")
    busy_team(memory, "beta")
    with redis_calls(memory.client) as calls:
        overview = read_overview(memory, teams=["beta"], server=False)
    assert [row["team_id"] for row in overview["teams"]] == ["beta"]
    assert overview["stats"]["keys"] is None and overview["usage"]["used_memory"] is None
    assert calls == ["PIPELINE", "PIPELINE"]  # the team's figures, its inboxes


def test_it_lists_each_team_once_in_the_shard_its_slot_picks(memory):
    AgentCoordinator(memory, "first").add_task(AgentTask("t1", "x"))
    AgentCoordinator(memory, "second").add_task(AgentTask("t1", "x"))
    memory._known_teams.clear()  # another process: it writes the index again
    AgentCoordinator(memory, "first").add_task(AgentTask("t2", "x"))
    assert memory.list_teams() == ["first", "second"]  # first seen first, once
    keys = team_index_keys(memory.config.key_prefix)
    assert len(set(keys)) == TEAM_INDEX_SHARDS
    holding = [key for key in keys if memory.client.zscore(key, "first") is not None]
    assert len(holding) == 1
    if memory.mode == "cluster":  # the first shard from there on the team's own master
        node = memory.client.get_node_from_key
        assert node(holding[0]).name == node(memory.team("first").events).name
    else:
        assert holding == [keys[team_index_shard("first")]]
    team_index.forget(memory, "first")
    assert memory.list_teams() == ["second"]

"""Relays share the events stream through a consumer group: every event to exactly one reader."""

from empathy_os import AgentCoordinator, AgentTask
from empathy_os.bench import cleanup
from empathy_os.events import EventReader


def test_it_hands_each_event_to_one_reader_of_the_group(memory):
    coordinator = AgentCoordinator(memory, "t1")
    coordinator.register_agent("a", ["x"])  # the team exists: readers start after this
    first, second = EventReader(memory, consumer="r1"), EventReader(memory, consumer="r2")
    assert first.read(block_ms=10) == [] and second.read(block_ms=10) == []
    coordinator.add_tasks([AgentTask(f"t{i}", "x") for i in range(5)])
    got_first = first.read(block_ms=10)
    got_second = second.read(block_ms=10)
    assert [f["task"] for _, _, f in got_first + got_second] == [f"t{i}" for i in range(5)]
    assert {team for team, _, _ in got_first} == {"t1"}
    assert all(f["kind"] == "task.added" for _, _, f in got_first)
    first.ack(got_first)
    assert memory.client.xpending(memory.team("t1").events, "relay")["pending"] == 0


def test_it_gives_unacknowledged_events_of_a_dead_reader_to_another(memory):
    coordinator = AgentCoordinator(memory, "t1")
    coordinator.register_agent("a", ["x"])
    dead, alive = EventReader(memory, consumer="dead"), EventReader(memory, consumer="alive", claim_idle_ms=0)
    dead.read(block_ms=10)
    alive.read(block_ms=10)
    coordinator.add_task(AgentTask("t1", "x"))
    taken = dead.read(block_ms=10)  # ... and never acknowledged
    assert [f["task"] for _, _, f in taken] == ["t1"]
    alive._claimed_at = 0.0
    assert [f["task"] for _, _, f in alive.read(block_ms=10)] == ["t1"]


def test_it_follows_teams_created_later_from_their_first_event(memory):
    reader = EventReader(memory, teams_refresh_s=0)
    assert reader.read(block_ms=10) == []
    AgentCoordinator(memory, "late").register_agent("a", ["x"])
    AgentCoordinator(memory, "late").add_task(AgentTask("t9", "x"))
    assert [(team, f["kind"]) for team, _, f in reader.read(block_ms=10)] == [
        ("late", "agent.registered"), ("late", "task.added")]


def test_it_reads_the_teams_there_at_start_from_then_on(memory):
    AgentCoordinator(memory, "early").register_agent("a", ["x"])
    reader = EventReader(memory, teams_refresh_s=0)
    assert reader.read(block_ms=10) == []
    AgentCoordinator(memory, "early").add_task(AgentTask("t1", "x"))
    assert [(team, f["kind"]) for team, _, f in reader.read(block_ms=10)] == [("early", "task.added")]


def test_it_forgets_the_stream_of_a_team_deleted_while_it_reads(memory):
    for team in ("kept", "gone"):
        AgentCoordinator(memory, team).register_agent("a", ["x"])
    reader = EventReader(memory, teams_refresh_s=0)
    assert reader.read(block_ms=10) == []
    cleanup(memory, "gone")
    assert reader.read(block_ms=10) == []  # its stream is missing: the groups are made again
    assert not memory.client.exists(memory.team("gone").events)
    AgentCoordinator(memory, "kept").add_task(AgentTask("t1", "x"))
    assert [(team, f["kind"]) for team, _, f in reader.read(block_ms=10)] == [("kept", "task.added")]
    assert memory.list_teams() == ["kept"]

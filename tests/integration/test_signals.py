"""Signals on streams: targeted and broadcast, none overwritten, a cursor per reader and filter."""

import threading

import pytest

from empathy_os import AccessDeniedError, AccessTier, AgentCoordinator, InvalidInputError

from .helpers import creds


def test_it_delivers_a_targeted_signal_with_all_fields(memory):
    sid = memory.send_signal(creds("sec"), "analysis_complete", {"warnings": 2}, target_agent="lead")
    [sig] = memory.receive_signals(creds("lead", AccessTier.VALIDATOR), "analysis_complete")
    assert sig["id"] == sid
    assert (sig["sender"], sig["signal_type"], sig["data"], sig["target"]) == ("sec", "analysis_complete", {"warnings": 2}, "lead")
    assert sig["sent_at"] > 1.7e9
    assert memory.receive_signals(creds("other"), "analysis_complete") == []


def test_it_overwrites_nothing(memory):
    for i in range(5):
        memory.send_signal(creds("sec"), "progress", {"i": i}, target_agent="lead")
    assert [s["data"]["i"] for s in memory.receive_signals(creds("lead"), "progress")] == [0, 1, 2, 3, 4]


def test_it_delivers_each_signal_once_per_reader(memory):
    memory.send_signal(creds("sec"), "ping", {})
    assert len(memory.receive_signals(creds("a"))) == 1
    assert memory.receive_signals(creds("a")) == []
    assert len(memory.receive_signals(creds("b"))) == 1


def test_it_broadcasts_to_every_reader_including_the_sender(memory):
    coordinator = AgentCoordinator(memory, "t1")
    coordinator.broadcast("ping", {"t": 1})
    assert [s["sender"] for s in memory.receive_signals(coordinator.credentials, signal_type="ping")] == ["coordinator"]
    assert [s["target"] for s in memory.receive_signals(creds("a"), "ping")] == [None]


def test_it_filters_broadcasts_by_type_without_swallowing_other_types(memory):
    me = creds("a")
    memory.send_signal(creds("s"), "alpha", {"n": 1})
    memory.send_signal(creds("s"), "beta", {"n": 2})
    memory.send_signal(creds("s"), "alpha", {"n": 3}, target_agent="a")
    assert [s["data"]["n"] for s in memory.receive_signals(me, "alpha")] == [1, 3]
    assert [s["data"]["n"] for s in memory.receive_signals(me, "beta")] == [2]
    assert [s["data"]["n"] for s in memory.receive_signals(me)] == [1, 2, 3]


def test_it_merges_inbox_and_broadcasts_oldest_first(memory):
    for i in range(4):
        memory.send_signal(creds("s"), "x", {"i": i}, target_agent="a" if i % 2 else None)
    assert [s["data"]["i"] for s in memory.receive_signals(creds("a"))] == [0, 1, 2, 3]


def test_it_keeps_teams_apart(memory):
    memory.send_signal(creds("s", team="t1"), "x", {})
    assert memory.receive_signals(creds("a", team="t2")) == []


def test_it_waits_for_a_signal(memory):
    me = creds("waiter")
    memory.receive_signals(me)  # nothing yet
    timer = threading.Timer(0.2, memory.send_signal, (creds("s"), "wake", {"now": True}, "waiter"))
    timer.start()
    try:
        got = memory.receive_signals(me, "wake", wait=5)
    finally:
        timer.join()
    assert [s["data"] for s in got] == [{"now": True}]


def test_it_returns_nothing_when_the_wait_runs_out(memory):
    memory.send_signal(creds("s"), "other_type", {})
    assert memory.receive_signals(creds("a"), "wanted", wait=0.2) == []


def test_it_limits_how_many_it_returns(memory):
    for i in range(5):
        memory.send_signal(creds("s"), "x", {"i": i})
    assert [s["data"]["i"] for s in memory.receive_signals(creds("a"), count=2)] == [0, 1]
    assert [s["data"]["i"] for s in memory.receive_signals(creds("a"), count=10)] == [2, 3, 4]


def test_it_refuses_bad_input(memory):
    with pytest.raises(InvalidInputError):
        memory.send_signal(creds("s"), "bad type", {})
    with pytest.raises(InvalidInputError):
        memory.send_signal(creds("s"), "x", {}, target_agent="no:pe")
    with pytest.raises(InvalidInputError, match="JSON"):
        memory.send_signal(creds("s"), "x", {"f": object()})
    with pytest.raises(AccessDeniedError):
        memory.send_signal(creds("s", AccessTier.OBSERVER), "x", {})
    with pytest.raises(InvalidInputError, match="count"):
        memory.receive_signals(creds("a"), count=0)

"""Working memory: stash, retrieve, forget; bad input; one round trip per change."""

import pytest

from empathy_os import (
    AccessDeniedError,
    AccessTier,
    InvalidInputError,
    ValueTooLargeError,
)
from empathy_os.defaults import Config

from tests.support import redis_calls

from .helpers import creds


def test_it_stashes_and_retrieves_json(memory):
    me = creds("agent_a")
    value = {"files": ["auth.py", "api.py"], "n": 2, "ok": True, "none": None, "unicode": "héllo ✓"}
    memory.stash(me, "current_task", value)
    assert memory.retrieve(me, "current_task") == value


def test_it_returns_none_for_missing_keys(memory):
    assert memory.retrieve(creds("agent_a"), "nothing_here") is None


def test_it_reads_another_agents_memory(memory):
    memory.stash(creds("security_agent"), "analysis_results", [1, 2, 3])
    assert memory.retrieve(creds("reader", AccessTier.OBSERVER), "analysis_results", agent_id="security_agent") == [1, 2, 3]


def test_it_keeps_agents_namespaces_apart(memory):
    memory.stash(creds("a"), "k", "from a")
    memory.stash(creds("b"), "k", "from b")
    assert memory.retrieve(creds("a"), "k") == "from a"
    assert memory.retrieve(creds("b"), "k") == "from b"


def test_it_keeps_teams_apart(memory):
    memory.stash(creds("a", team="t1"), "k", 1)
    assert memory.retrieve(creds("a", team="t2"), "k") is None


def test_it_sets_the_default_ttl_and_a_given_one(memory):
    me = creds("a")
    memory.stash(me, "default_ttl", 1)
    memory.stash(me, "short", 1, ttl=30)
    team = memory.team("t1")
    assert 3590 <= memory.client.ttl(team.memory("a", "default_ttl")) <= 3600
    assert 25 <= memory.client.ttl(team.memory("a", "short")) <= 30


def test_it_forgets_only_own_keys(memory):
    me = creds("a")
    memory.stash(me, "k", 1)
    assert memory.forget(me, "k") is True
    assert memory.forget(me, "k") is False
    assert memory.retrieve(me, "k") is None


@pytest.mark.parametrize("key", ["", "a:b", "a*", "{x}", "has space", "é", "x" * 129, "-leading", None, 5])
def test_it_refuses_bad_keys(memory, key):
    with pytest.raises(InvalidInputError):
        memory.stash(creds("a"), key, 1)


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), b"bytes", {"x": float("inf")}])
def test_it_refuses_non_json_values(memory, value):
    with pytest.raises(ValueError, match="JSON"):
        memory.stash(creds("a"), "k", value)
    assert memory.retrieve(creds("a"), "k") is None


def test_it_refuses_oversize_values_and_writes_nothing(memory_factory):
    memory = memory_factory(config=Config(max_value_bytes=1000))
    me = creds("a")
    memory.stash(me, "k", "small")
    with pytest.raises(ValueTooLargeError, match="limit is 1,000 bytes"):
        memory.stash(me, "k", "é" * 600)  # 1,202 bytes as UTF-8 JSON
    assert memory.retrieve(me, "k") == "small"


def test_it_accepts_a_value_at_the_limit(memory_factory):
    memory = memory_factory(config=Config(max_value_bytes=1000))
    memory.stash(creds("a"), "k", "x" * 998)  # 1,000 bytes with the quotes
    assert len(memory.retrieve(creds("a"), "k")) == 998


@pytest.mark.parametrize("ttl", [0, -1, "10", float("nan"), True])
def test_it_refuses_bad_ttls(memory, ttl):
    with pytest.raises(InvalidInputError, match="ttl"):
        memory.stash(creds("a"), "k", 1, ttl=ttl)


def test_it_refuses_writes_from_observers(memory):
    with pytest.raises(AccessDeniedError, match="contributor"):
        memory.stash(creds("a", AccessTier.OBSERVER), "k", 1)


def test_it_refuses_deeply_nested_values(memory):
    value = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidInputError, match="nested"):
        memory.stash(creds("a"), "k", value)


def test_it_changes_state_in_one_round_trip_with_its_event(memory):
    me = creds("a")
    memory.stash(me, "warm", 1)  # the first write of a team also indexes the team, once,
    memory.forget(me, "warm")  # and each script is loaded on its first use
    events_before = memory.client.xlen(memory.team("t1").events)
    with redis_calls(memory.client) as calls:
        memory.stash(me, "k", {"v": 1})
        memory.forget(me, "k")
    assert calls == ["EVALSHA", "EVALSHA"]
    events = memory.read_events("t1")[events_before:]
    assert [(e["kind"], e["agent"], e["key"]) for e in events] == [
        ("memory.stashed", "a", "k"), ("memory.forgotten", "a", "k")]


def test_it_reports_stats(memory, backend):
    memory.stash(creds("a"), "k", 1)
    stats = memory.get_stats()
    assert stats["mode"] == backend
    assert stats["keys"] >= 2  # the value, the events stream, the team index
    assert stats["memory_used"]
    assert stats["teams"] == 1

"""Team sessions: create-if-absent, participants, shared context, TTL refresh."""

import pytest

from empathy_os import AccessDeniedError, AccessTier, InvalidInputError, TeamSession, list_sessions

from .helpers import creds


def test_it_shares_context_between_participants(memory):
    session = TeamSession(memory, "pr_42", "Review PR #42", team_id="t1")
    assert session.created
    for agent in ["security_agent", "lead_reviewer"]:
        session.add_agent(agent)
    session.share("pr_context", {"pr_number": 42, "files": ["auth.py"]})
    other = TeamSession(memory, "pr_42", team_id="t1", credentials=creds("lead_reviewer"))
    assert other.created is False
    assert other.get("pr_context") == {"pr_number": 42, "files": ["auth.py"]}
    assert other.get("missing", "default") == "default"
    info = other.get_info()
    assert info["purpose"] == "Review PR #42"
    assert info["participants"] == ["lead_reviewer", "security_agent"]
    assert info["context_keys"] == ["pr_context"]


def test_it_never_resets_an_existing_session(memory):
    TeamSession(memory, "s1", "first purpose").share("k", 1)
    again = TeamSession(memory, "s1", "second purpose")
    assert again.get_info()["purpose"] == "first purpose"
    assert again.get("k") == 1


def test_it_refreshes_the_ttl_on_activity(memory):
    session = TeamSession(memory, "s1", "p")
    keys = memory.team("default")
    memory.client.expire(keys.session("s1"), 10)
    session.share("k", 1)
    assert memory.client.ttl(keys.session("s1")) > 3600
    assert memory.client.ttl(keys.session_context("s1")) > 3600


def test_it_lets_agents_join_only_as_themselves(memory):
    TeamSession(memory, "s1", "p", team_id="t1")
    as_agent = TeamSession(memory, "s1", team_id="t1", credentials=creds("a"))
    as_agent.add_agent("a")
    with pytest.raises(AccessDeniedError):
        as_agent.add_agent("b")
    observer = TeamSession(memory, "s1", team_id="t1", credentials=creds("o", AccessTier.OBSERVER))
    with pytest.raises(AccessDeniedError):
        observer.share("k", 1)
    assert observer.get_info()["participants"] == ["a"]


def test_it_lists_live_sessions(memory):
    TeamSession(memory, "s1", "one", team_id="t1")
    TeamSession(memory, "s2", "two", team_id="t1")
    assert [s["session_id"] for s in list_sessions(memory, "t1")] == ["s2", "s1"]


def test_it_refuses_bad_input(memory):
    with pytest.raises(InvalidInputError):
        TeamSession(memory, "bad id", "p")
    session = TeamSession(memory, "s1", "p")
    with pytest.raises(InvalidInputError, match="JSON"):
        session.share("k", {1, 2})
    assert session.get_info()["context_keys"] == []

"""``empathy_os.client``: retries, errors and identities (against a scripted transport), and the chapter's
classes over a live site (uvicorn serving the test's memory, both backends)."""

from __future__ import annotations

import httpx
import pytest
from channels.db import database_sync_to_async

from coordination.tokens import issue_token
from empathy_os import (
    AccessDeniedError,
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    ConflictError,
    EmpathyOS,
    InvalidInputError,
    LeaseError,
    MemoryUnavailableError,
    NotFoundError,
    StagedPattern,
    StagingFullError,
    TeamSession,
    ValueTooLargeError,
)
from empathy_os.client import AsyncClient, RateLimitedError, TokenRejectedError, _http, connect
from empathy_os.client.remote import RemoteCoordinator, RemoteSession

TEAM = "t1"
ME = {"agent_id": "scout", "team_id": TEAM, "tier": "contributor"}


class Scripted:
    """A transport answering ``/me`` and ``/health``, and each other request from ``answers`` in turn
    (an ``httpx.Response`` or an exception to raise); ``calls`` records the paths asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/me":
            return httpx.Response(200, json=ME)
        if path == "/health":
            return httpx.Response(200, json={"status": "ok", "memory_mode": "redis", "redis_reachable": True})
        self.calls.append(path)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def scripted_client(*answers, **options):
    script = Scripted(*answers)
    return connect("http://site.test", "emp_x", transport=httpx.MockTransport(script), **options), script


@pytest.fixture
def sleeps(monkeypatch):
    """The client's back-off waits, recorded instead of slept."""
    waited = []
    monkeypatch.setattr(_http.time, "sleep", waited.append)
    return waited


def unavailable(retry_after=None):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return httpx.Response(503, json={"error": "memory_unavailable", "detail": "Redis did not answer"}, headers=headers)


def test_it_retries_a_503_with_back_off_and_honours_retry_after(sleeps):
    client, script = scripted_client(unavailable(), unavailable(retry_after=2), httpx.Response(200, json={"keys": 3}))
    assert client.get_stats() == {"keys": 3}
    assert script.calls == ["/stats"] * 3
    assert sleeps == [_http.BACKOFF, 2.0]  # doubled back-off, but never less than Retry-After


def test_it_gives_up_after_its_retries_with_the_servers_message(sleeps):
    client, script = scripted_client(*[unavailable()] * 3, retries=2)
    with pytest.raises(MemoryUnavailableError, match="Redis did not answer"):
        client.get_stats()
    assert len(script.calls) == 3 and sleeps == [_http.BACKOFF, _http.BACKOFF * 2]


def test_it_retries_a_connection_that_could_not_be_made_but_not_one_lost_after_sending(sleeps):
    client, script = scripted_client(httpx.ConnectError("refused"), httpx.Response(200, json={"keys": 1}))
    assert client.get_stats() == {"keys": 1}
    client, script = scripted_client(httpx.ReadTimeout("lost"), httpx.Response(200, json={}))
    with pytest.raises(MemoryUnavailableError, match="did not answer"):
        client.stash(None, "k", 1)
    assert script.calls == ["/memory/k"]  # sent once: it may have been done


@pytest.mark.parametrize("status,code,exc", [
    (400, "invalid_input", InvalidInputError),
    (401, "unauthorized", TokenRejectedError),
    (403, "forbidden", AccessDeniedError),
    (404, "not_found", NotFoundError),
    (409, "conflict", ConflictError),
    (409, "lease", LeaseError),
    (409, "staging_full", StagingFullError),
    (413, "too_large", ValueTooLargeError),
    (429, "too_many_requests", RateLimitedError),
])
def test_it_maps_errors_to_the_librarys_exceptions_and_never_retries_a_4xx(status, code, exc, sleeps):
    client, script = scripted_client(httpx.Response(status, json={"error": code, "detail": f"the server says {code}"}))
    with pytest.raises(exc, match=f"^the server says {code}$"):
        client.get_stats()
    assert len(script.calls) == 1 and sleeps == []


def test_an_unknown_token_is_refused_at_connect(live_site):
    with pytest.raises(TokenRejectedError, match="send a valid agent token"):
        connect(live_site.url, "emp_nobody")
    with pytest.raises(ValueError, match="give an agent token"):
        connect(live_site.url)
    with pytest.raises(ValueError, match="must start with http"):
        connect("site.test:8000", "emp_x")


def test_each_agent_speaks_with_its_own_token(live_site, memory):
    tokens = [issue_token(agent, TEAM, tier)[0] for agent, tier in (("alice", "contributor"), ("bob", "validator"))]
    with connect(live_site.url, tokens=tokens) as client:
        assert [(w.agent_id, w.tier) for _, w in client.keyring.identities] == [
            ("alice", AccessTier.CONTRIBUTOR), ("bob", AccessTier.VALIDATOR)]
        alice = EmpathyOS("alice", client, team_id=TEAM)
        bob = EmpathyOS("bob", client, AccessTier.VALIDATOR, team_id=TEAM)
        alice.send_signal("hello", {"n": 1}, target_agent="bob")
        assert [s["sender"] for s in bob.receive_signals("hello")] == ["alice"]
        with pytest.raises(AccessDeniedError, match="no token for agent carol .* alice@t1 \\(contributor\\), bob@t1"):
            EmpathyOS("carol", client, team_id=TEAM).stash("k", 1)


def test_the_tier_is_the_tokens_whatever_the_code_claims(live_site, memory):
    author = AgentCredentials("alice", AccessTier.CONTRIBUTOR, TEAM)
    memory.stage_pattern(author, StagedPattern("pat_1", "alice", "security", "A pattern"))
    with connect(live_site.url, issue_token("alice", TEAM, "contributor")[0]) as client:
        claims_more = EmpathyOS("alice", client, AccessTier.STEWARD, team_id=TEAM)
        with pytest.raises(AccessDeniedError, match="needs the validator tier or higher; agent alice is contributor"):
            claims_more.promote_pattern("pat_1")
        with pytest.raises(AccessDeniedError, match="only a steward acts for another agent"):
            AgentCoordinator(client, TEAM, claims_more.credentials).register_agent("bob", ["x"])
    assert [p.pattern_id for p in memory.get_staged_patterns(author)] == ["pat_1"]


def test_the_chapters_classes_run_over_http(live_site, memory):
    with connect(live_site.url, issue_token("coordinator", TEAM, "steward")[0]) as client:
        team = AgentCoordinator(client, team_id=TEAM)
        assert isinstance(team, RemoteCoordinator)
        team.register_agent("alpha", ["review"])
        assert team.add_task(AgentTask("t-1", "review", priority=9)) is True
        assert team.add_task(AgentTask("t-1", "review")) is False
        task = team.claim_task("alpha")
        assert (task.task_id, task.assigned_to, task.lease_token) == ("t-1", "alpha", "1")
        assert team.extend_lease("t-1", "alpha", lease_seconds=60, lease_token=task.lease_token) > task.claimed_at
        assert team.complete_task("t-1", {"ok": True}) == "alpha"
        with pytest.raises(ConflictError):
            team.complete_task("t-1", {"again": True})
        assert team.get_task("t-1").result == {"ok": True} and team.get_task("nope") is None
        assert [t.task_id for t in team.list_tasks("completed")] == ["t-1"]
        assert team.get_active_agents() == ["alpha"]
        session = TeamSession(client, "s-1", "review", team_id=TEAM)
        assert isinstance(session, RemoteSession) and session.created
        assert TeamSession(client, "s-1", team_id=TEAM).created is False  # opens, never resets
        session.add_agent("alpha")
        session.share("scope", [1, 2])
        assert session.get("scope") == [1, 2] and session.get("other", "none") == "none"
        session.remove_agent("alpha")
        assert session.get_info()["participants"] == [] and session.get_context() == {"scope": [1, 2]}
    local = AgentCoordinator(memory, TEAM)
    assert local.aggregate_results()["by_agent"] == {"alpha": 1}


@pytest.mark.parametrize("cls,remote", [(AgentCoordinator, RemoteCoordinator), (TeamSession, RemoteSession)])
def test_the_remote_classes_override_every_public_method(cls, remote):
    """The library's methods run Redis operations: inherited unchanged, one would try to run them on a client."""
    by_library = {name for name in vars(cls) if not name.startswith("_") and callable(getattr(cls, name))}
    over_memory = {"send_signal", "broadcast", "receive_signals"}  # they call the memory's own operations
    assert by_library - over_memory <= set(vars(remote))


@pytest.mark.django_db(transaction=True)
async def test_the_async_client(live_site, memory):
    token = (await database_sync_to_async(issue_token)("scout", TEAM, "contributor"))[0]
    AgentCoordinator(memory, TEAM).add_task(AgentTask("t-1", "review"))
    memory.send_signal(AgentCredentials("lead", AccessTier.STEWARD, TEAM), "go", {}, "scout")
    async with await AsyncClient.connect(live_site.url, token) as client:
        assert client.identity.agent_id == "scout" and client.mode == ("mock" if memory.mode == "mock" else "redis")
        await client.stash(None, "k", {"v": 1})
        assert await client.retrieve(None, "k") == {"v": 1} and await client.retrieve(None, "nope") is None
        task = await client.claim(None, "scout", "review")
        assert await client.complete(None, task.task_id, {"ok": 1}, lease_token=task.lease_token) == "scout"
        assert [s["signal_type"] for s in await client.receive_signals(None, wait=2)] == ["go"]
        with pytest.raises(AccessDeniedError):
            await client.promote_pattern(None, "p")
    assert AgentCoordinator(memory, TEAM).aggregate_results()["by_agent"] == {"scout": 1}


def test_task_history_and_conflicts_over_http(live_site, memory):
    tokens = [issue_token("coordinator", TEAM, "steward")[0], issue_token("val", TEAM, "validator")[0]]
    with connect(live_site.url, tokens=tokens) as client:
        team = AgentCoordinator(client, TEAM)
        team.add_task(AgentTask("t-1", "review"))
        team.claim_task("alpha", "review")
        assert [e["event"] for e in team.get_task_history("t-1")] == [
            e["event"] for e in AgentCoordinator(memory, TEAM).get_task_history("t-1")]
        assert len(team.get_task_history("t-1")) == 2
        with pytest.raises(NotFoundError):
            team.get_task_history("nope")
        validator = EmpathyOS("val", client, AccessTier.VALIDATOR, team_id=TEAM)
        made = validator.create_conflict_context("c-1", {"a": "ship", "b": "wait"}, batna="ask the lead")
        assert (made.conflict_id, made.created_by, made.resolved) == ("c-1", "val", False)
        done = validator.resolve_conflict("c-1", {"pick": "b"})
        assert (done.resolved, done.resolution, done.resolved_by) == (True, {"pick": "b"}, "val")
        with pytest.raises(ConflictError):
            validator.resolve_conflict("c-1", {"pick": "a"})


def test_batches_over_http(live_site, memory):
    with connect(live_site.url, issue_token("coordinator", TEAM, "steward")[0]) as client:
        team = AgentCoordinator(client, TEAM)
        team.add_tasks([AgentTask(f"b-{i}", "review", priority=9 - i) for i in range(3)])
        claimed = team.claim_tasks("alpha", 2, "review")
        assert [(t.task_id, t.assigned_to) for t in claimed] == [("b-0", "alpha"), ("b-1", "alpha")]
        done = team.complete_tasks([claimed[0], ("b-1", {"ok": 1}, claimed[1].lease_token), ("b-2", {})])
        assert done[:2] == ["alpha", "alpha"] and isinstance(done[2], LeaseError)
    assert AgentCoordinator(memory, TEAM).aggregate_results()["by_agent"] == {"alpha": 2}

"""The agent HTTP API, /api/v1: flows, identity, every error code, long-polls, races, failures, tokens.

Flows run on both backends (the ``memory`` fixture: fakeredis and a private redis-server).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections

from coordination.memory import memory_in_use
from coordination.models import AgentToken
from empathy_os import AccessTier, AgentCredentials, RedisShortTermMemory
from patterns.models import LibraryLookup, LibraryPattern, PatternDecision
from tests.support import Api, RedisServer, assert_error

from .conftest import TEAM

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def pattern_body(pattern_id="p1", **overrides):
    body = {"pattern_id": pattern_id, "pattern_type": "security", "name": "Parameterised queries",
            "description": "Use bound parameters, never string formatting, to build SQL.",
            "code": "cursor.execute('SELECT * FROM t WHERE id = %s', [tid])", "confidence": 0.9,
            "context": {"language": "python"}}
    body.update(overrides)
    return body


# -- flows ------------------------------------------------------------------------------------------


def test_health_needs_no_token_and_says_the_mode(api, site_memory):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "memory_mode": site_memory.mode,
                               "redis_reachable": site_memory.mode != "mock"}


def test_openapi_schema_and_docs_page(api, site_memory):
    schema = api.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/tasks/claim" in paths and "/api/v1/patterns/staged/{pattern_id}/promote" in paths
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs["Content-Type"]


def test_register_add_claim_complete_and_results(api, site_memory, agents):
    worker, lead = agents["contributor"], agents["steward"]
    assert api.post("/agents/register", {"capabilities": ["review"]}, token=worker).json() == {
        "agent_id": worker.agent_id, "team_id": TEAM, "capabilities": ["review"], "released": 0}
    listed = api.get("/agents", token=agents["observer"]).json()
    assert [(a["agent_id"], a["capabilities"], a["active"]) for a in listed] == [(worker.agent_id, ["review"], True)]

    added = api.post("/tasks", [{"task_id": "t-1", "task_type": "review", "priority": 1},
                                {"task_id": "t-2", "task_type": "review", "priority": 9,
                                 "context": {"file": "a.py"}}], token=lead)
    assert added.status_code == 201
    assert added.json() == {"added": ["t-1", "t-2"], "existing": []}
    again = api.post("/tasks", [{"task_id": "t-2", "task_type": "review"}, {"task_id": "t-3", "task_type": "review"}],
                     token=lead)
    assert again.status_code == 201 and again.json() == {"added": ["t-3"], "existing": ["t-2"]}
    pending = api.get("/tasks?status=pending", token=worker).json()
    assert [t["task_id"] for t in pending] == ["t-2", "t-3", "t-1"]

    claimed = api.post("/tasks/claim", token=worker)  # no body, no type: the caller's capabilities
    assert claimed.status_code == 200
    task = claimed.json()
    assert (task["task_id"], task["status"], task["assigned_to"]) == ("t-2", "in_progress", worker.agent_id)
    assert task["context"] == {"file": "a.py"} and task["lease_expires_at"] > time.time()

    extended = api.post("/tasks/t-2/heartbeat", {"lease_seconds": 120, "lease_token": task["lease_token"]},
                        token=worker)
    assert extended.status_code == 200 and extended.json()["lease_expires_at"] > time.time() + 100
    done = api.post("/tasks/t-2/complete", {"result": {"issues": 2}, "lease_token": task["lease_token"]},
                    token=worker)
    assert done.status_code == 200 and done.json() == {"task_id": "t-2", "status": "completed", "agent_id": worker.agent_id}
    record = api.get("/tasks/t-2", token=agents["observer"]).json()
    assert (record["status"], record["result"]) == ("completed", {"issues": 2})
    assert [t["task_id"] for t in api.get("/tasks?status=completed", token=worker).json()] == ["t-2"]

    results = api.get("/results", token=agents["observer"]).json()
    assert results["total_completed"] == 1
    assert results["by_agent"] == {worker.agent_id: 1} and results["by_type"] == {"review": 1}

    api.post("/tasks/claim", {"task_type": "review"}, token=worker)
    failed = api.post("/tasks/t-3/fail", {"reason": "cannot parse"}, token=worker)
    assert failed.status_code == 200 and failed.json() == {"task_id": "t-3", "status": "failed"}
    assert api.post("/tasks/claim", {"task_type": "review"}, token=worker).json()["task_id"] == "t-1"
    nothing = api.post("/tasks/claim", {"task_type": "review"}, token=worker)
    assert nothing.status_code == 204 and nothing.content == b""
    beat = api.post("/agents/heartbeat", token=worker)
    assert beat.status_code == 200 and beat.json() == {"agent_id": worker.agent_id, "leases_renewed": 1}
    stats = api.get("/stats", token=agents["observer"]).json()
    assert stats["mode"] == site_memory.mode and stats["tasks_completed"] == 1 and stats["agents"] == 1


def test_send_and_receive_signals(api, site_memory, make_token):
    alice, bob = make_token("contributor", "alice"), make_token("contributor", "bob")
    carol = make_token("observer", "carol")
    assert api.post("/signals", {"signal_type": "review_done", "data": {"n": 1}, "target_agent": "bob"},
                    token=alice).status_code == 201
    assert api.post("/signals", {"signal_type": "status", "data": "all hands"}, token=alice).status_code == 201
    got = api.get("/signals", token=bob).json()
    assert [(s["sender"], s["signal_type"], s["data"], s["target"]) for s in got] == [
        ("alice", "review_done", {"n": 1}, "bob"), ("alice", "status", "all hands", None)]
    assert api.get("/signals", token=bob).json() == []  # each signal is received once per reader
    # carol gets the broadcast only; the type filter applies to it
    assert api.get("/signals?type=review_done", token=carol).json() == []
    assert [s["data"] for s in api.get("/signals?type=status", token=carol).json()] == ["all hands"]
    # the sender reads its own broadcast too
    assert [s["signal_type"] for s in api.get("/signals", token=alice).json()] == ["status"]


def test_stage_promote_and_search_the_library_with_reuse_counts(api, site_memory, agents, make_token):
    author, validator = agents["contributor"], agents["validator"]
    staged = api.post("/patterns/staged", pattern_body(), token=author)
    assert staged.status_code == 201
    assert staged.json()["agent_id"] == author.agent_id
    updated = api.post("/patterns/staged", pattern_body(confidence=0.95), token=author)
    assert updated.status_code == 200 and updated.json()["confidence"] == 0.95
    queue = api.get("/patterns/staged", token=agents["observer"]).json()
    assert [(p["pattern_id"], p["rediscovery_of"]) for p in queue] == [("p1", None)]

    promoted = api.post("/patterns/staged/p1/promote", {"note": "solid"}, token=validator)
    assert promoted.status_code == 200, promoted.content
    body = promoted.json()
    assert (body["pattern_id"], body["discovered_by"], body["promoted_by"], body["reuse_count"]) == (
        "p1", author.agent_id, validator.agent_id, 0)
    assert api.get("/patterns/staged", token=validator).json() == []
    decision = PatternDecision.objects.get(team_id=TEAM, pattern_id="p1")
    assert (decision.decision, decision.decided_by, decision.note) == ("promoted", validator.agent_id, "solid")

    found = api.get("/patterns/library?q=bound+parameters&type=security", token=agents["observer"]).json()
    assert [(p["pattern_id"], p["reuse_count"]) for p in found] == [("p1", 1)]
    assert api.get("/patterns/library?q=BOUND", token=author).json()[0]["reuse_count"] == 2
    assert api.get("/patterns/library?q=nothing-like-it", token=author).json() == []
    assert api.get("/patterns/library?type=performance", token=author).json() == []
    assert LibraryPattern.objects.get(pattern_id="p1").reuse_count == 2
    lookups = LibraryLookup.objects.get(team_id=TEAM)
    assert (lookups.lookups, lookups.hits) == (4, 2)

    # someone else stages the same content under another id: flagged as a rediscovery
    other = make_token("contributor", "latecomer")
    api.post("/patterns/staged", pattern_body("p2", name="SQL params"), token=other)
    queue = api.get("/patterns/staged", token=validator).json()
    assert [(p["pattern_id"], p["rediscovery_of"]) for p in queue] == [("p2", "p1")]

    rejected = api.post("/patterns/staged/p2/reject", {"reason": "already in the library"}, token=validator)
    assert rejected.status_code == 200
    assert rejected.json()["decision"] == "rejected" and rejected.json()["note"] == "already in the library"
    assert not LibraryPattern.objects.filter(pattern_id="p2").exists()


def test_sessions_join_and_shared_context(api, site_memory, make_token):
    alice, bob = make_token("contributor", "alice"), make_token("contributor", "bob")
    watcher = make_token("observer", "watcher")
    created = api.post("/sessions", {"session_id": "review-42", "purpose": "PR 42"}, token=alice)
    assert created.status_code == 201
    assert created.json()["participants"] == [] and created.json()["purpose"] == "PR 42"
    reopened = api.post("/sessions", {"session_id": "review-42", "purpose": "other"}, token=bob)
    assert reopened.status_code == 200 and reopened.json()["purpose"] == "PR 42"  # joins, never resets
    for agent in (alice, bob):
        assert api.post("/sessions/review-42/join", token=agent).status_code == 200
    shared = api.put("/sessions/review-42/context/findings", {"value": ["sql injection"]}, token=alice)
    assert shared.status_code == 200 and shared.json() == {"key": "findings", "value": ["sql injection"]}
    assert api.get("/sessions/review-42/context/findings", token=watcher).json() == {
        "key": "findings", "value": ["sql injection"]}
    info = api.get("/sessions/review-42", token=watcher).json()
    assert info["participants"] == ["alice", "bob"] and info["context_keys"] == ["findings"]
    assert info["created_by"] == "alice"
    assert_error(api.get("/sessions/review-42/context/nothing", token=watcher), 404, "not_found")
    assert_error(api.get("/sessions/no-such-session", token=watcher), 404, "not_found")
    assert_error(api.post("/sessions/no-such-session/join", token=bob), 404, "not_found")


def test_collaboration_state_is_per_agent(api, site_memory, make_token):
    alice, bob = make_token("contributor", "alice"), make_token("contributor", "bob")
    saved = api.put("/state/s-1", {"state": {"trust": 0.8, "level": 3}}, token=alice)
    assert saved.status_code == 200 and saved.json() == {"session_id": "s-1", "state": {"trust": 0.8, "level": 3}}
    assert api.get("/state/s-1", token=alice).json()["state"] == {"trust": 0.8, "level": 3}
    assert_error(api.get("/state/s-1", token=bob), 404, "not_found")
    assert_error(api.put("/state/s-1", {"state": [1, 2]}, token=alice), 400, "invalid_input")


def test_working_memory_with_ttl_and_reading_another_agents(api, site_memory, make_token):
    alice, bob = make_token("contributor", "alice"), make_token("observer", "bob")
    put = api.put("/memory/analysis", {"value": {"files": 3}, "ttl": 1}, token=alice)
    assert put.status_code == 200
    assert put.json() == {"key": "analysis", "agent_id": "alice", "value": {"files": 3}}
    assert api.put("/memory/notes", {"value": "kept"}, token=alice).status_code == 200
    assert api.get("/memory/analysis", token=alice).json()["value"] == {"files": 3}
    other = api.get("/memory/analysis?agent_id=alice", token=bob)
    assert other.status_code == 200 and other.json() == {"key": "analysis", "agent_id": "alice", "value": {"files": 3}}
    assert_error(api.get("/memory/analysis", token=bob), 404, "not_found")  # bob's own: none
    team = site_memory.team(TEAM)
    assert 0 < site_memory.client.ttl(team.memory("alice", "analysis")) <= 1
    assert 3500 < site_memory.client.ttl(team.memory("alice", "notes")) <= 3600  # default: one hour
    time.sleep(1.6)
    assert_error(api.get("/memory/analysis?agent_id=alice", token=bob), 404, "not_found")
    assert api.get("/memory/notes?agent_id=alice", token=bob).json()["value"] == "kept"
    assert api.delete("/memory/notes", token=alice).status_code == 204
    assert_error(api.delete("/memory/notes", token=alice), 404, "not_found")
    for bad_ttl in (0, -5, "soon"):
        assert_error(api.put("/memory/x", {"value": 1, "ttl": bad_ttl}, token=alice), 400, "invalid_input")


# -- identity: who calls comes from the token, never from the body --------------------------------


def test_the_body_cannot_say_who_the_caller_is(api, site_memory, make_token):
    mallory, victim = make_token("contributor", "mallory"), make_token("contributor", "victim")
    # Acting for another agent (agent_id) is a steward's: anyone else is refused, not silently renamed.
    refused = api.post("/agents/register", {"capabilities": ["review"], "agent_id": "victim"}, token=mallory)
    assert_error(refused, 403, "forbidden")
    assert api.get("/agents", token=victim).json() == []

    staged = api.post("/patterns/staged", {**pattern_body("p-m"), "agent_id": "victim"}, token=mallory)
    assert staged.status_code == 201 and staged.json()["agent_id"] == "mallory"
    assert site_memory.get_staged_patterns(AgentCredentials("x", AccessTier.OBSERVER, TEAM))[0].agent_id == "mallory"

    api.put("/memory/secret", {"value": "forged", "agent_id": "victim"}, token=mallory)
    assert_error(api.get("/memory/secret?agent_id=victim", token=mallory), 404)
    assert api.get("/memory/secret?agent_id=mallory", token=victim).json()["value"] == "forged"

    api.post("/signals", {"signal_type": "hello", "sender": "victim", "agent_id": "victim"}, token=mallory)
    assert [s["sender"] for s in api.get("/signals", token=victim).json()] == ["mallory"]

    api.post("/tasks", {"task_id": "job", "task_type": "review"}, token=victim)
    assert_error(api.post("/tasks/claim", {"task_type": "review", "agent_id": "victim"}, token=mallory), 403, "forbidden")
    claimed = api.post("/tasks/claim", {"task_type": "review"}, token=mallory).json()
    assert claimed["assigned_to"] == "mallory"
    assert api.get("/tasks/job", token=victim).json()["created_by"] == "victim"

    api.put("/state/s", {"state": {"who": "forged"}, "agent_id": "victim"}, token=mallory)
    assert_error(api.get("/state/s", token=victim), 404)


def test_an_agent_cannot_complete_fail_or_extend_another_agents_task(api, site_memory, make_token):
    holder, other = make_token("contributor", "holder"), make_token("validator", "other")
    api.post("/tasks", {"task_id": "job", "task_type": "review"}, token=holder)
    task = api.post("/tasks/claim", {"task_type": "review"}, token=holder).json()
    for action, body in (("complete", {"result": "mine now", "lease_token": task["lease_token"]}),
                         ("fail", {"reason": "sabotage"}), ("heartbeat", {})):
        assert_error(api.post(f"/tasks/job/{action}", body, token=other), 409, "lease")
    assert api.get("/tasks/job", token=other).json()["assigned_to"] == "holder"
    assert api.post("/tasks/job/complete", {"result": 1}, token=holder).status_code == 200
    assert api.get("/results", token=other).json()["by_agent"] == {"holder": 1}
    # exactly once: a second completion is a conflict
    assert_error(api.post("/tasks/job/complete", {"result": 2}, token=holder), 409, "conflict")


def test_a_contributor_cannot_promote_or_reject(api, site_memory, agents):
    api.post("/patterns/staged", pattern_body(), token=agents["contributor"])
    assert_error(api.post("/patterns/staged/p1/promote", token=agents["contributor"]), 403, "forbidden")
    assert_error(api.post("/patterns/staged/p1/reject", {"reason": "no"}, token=agents["contributor"]), 403,
                 "forbidden")
    assert [p["pattern_id"] for p in api.get("/patterns/staged", token=agents["observer"]).json()] == ["p1"]
    assert not PatternDecision.objects.exists() and not LibraryPattern.objects.exists()


def test_an_observer_writes_nothing(api, site_memory, agents):
    observer = agents["observer"]
    assert_error(api.put("/memory/k", {"value": 1}, token=observer), 403, "forbidden")
    assert_error(api.post("/tasks", {"task_id": "t", "task_type": "x"}, token=observer), 403)
    assert_error(api.post("/signals", {"signal_type": "x"}, token=observer), 403)
    assert_error(api.post("/patterns/staged", pattern_body(), token=observer), 403)
    assert site_memory.get_stats()["tasks_pending"] == 0


def test_tokens_of_another_team_see_nothing_of_this_one(api, site_memory, make_token):
    here, there = make_token("steward", "lead"), make_token("steward", "lead", team="t2")
    api.post("/tasks", {"task_id": "job", "task_type": "review"}, token=here)
    api.put("/memory/k", {"value": 1}, token=here)
    assert api.get("/tasks", token=there).json() == []
    assert_error(api.get("/tasks/job", token=there), 404)
    assert_error(api.get("/memory/k?agent_id=lead", token=there), 404)


# -- errors: always JSON {"error", "detail"} ---------------------------------------------------------


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2", b"\xff\xfe", b"", b"null", b'"a string"', b"42"])
def test_malformed_or_wrong_json_is_400(api, site_memory, agents, data):
    response = api.post("/tasks", data=data, token=agents["contributor"])
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize("method,path,body", [
    ("PUT", "/memory/bad%20key", {"value": 1}),
    ("PUT", "/memory/-starts-with-dash", {"value": 1}),
    ("PUT", "/memory/" + "k" * 129, {"value": 1}),
    ("GET", "/memory/key?agent_id=no/slashes", None),
    ("POST", "/tasks", {"task_id": "has space", "task_type": "review"}),
    ("POST", "/tasks", {"task_id": "ok", "task_type": "review", "priority": 5000}),
    ("POST", "/tasks", {"task_id": "ok", "task_type": "review", "priority": "high"}),
    ("POST", "/tasks", {"task_id": 5, "task_type": "review"}),
    ("POST", "/tasks", {"task_type": "review"}),
    ("POST", "/tasks", []),
    ("POST", "/tasks", [{"task_id": "dup", "task_type": "x"}, {"task_id": "dup", "task_type": "x"}]),
    ("POST", "/tasks/claim", {"task_type": "bad type!"}),
    ("POST", "/tasks/claim", {}),  # no type and not registered: nothing to claim by
    ("POST", "/tasks/claim", {"task_type": "x", "lease_seconds": -1}),
    ("POST", "/tasks/bad%21id/complete", {}),
    ("POST", "/tasks/job/fail", {"reason": ""}),
    ("GET", "/tasks?status=bogus", None),
    ("GET", "/tasks?limit=0", None),
    ("GET", "/tasks?limit=many", None),
    ("GET", "/tasks/bad%21id", None),
    ("POST", "/signals", {"signal_type": "no spaces please"}),
    ("POST", "/signals", {"signal_type": "x", "target_agent": "bad agent"}),
    ("GET", "/signals?type=bad%20type", None),
    ("GET", "/signals?wait=31", None),
    ("GET", "/signals?wait=-1", None),
    ("GET", "/signals?wait=soon", None),
    ("POST", "/sessions", {"session_id": "bad id"}),
    ("POST", "/sessions", {"session_id": "ok", "purpose": 7}),
    ("PUT", "/sessions/bad%20id/context/k", {"value": 1}),
    ("GET", "/sessions/bad%20id/context/k", None),
    ("GET", "/sessions/bad%20id", None),
    ("POST", "/sessions/bad%20id/join", None),
    ("POST", "/patterns/staged", {"pattern_id": "p", "pattern_type": "t", "name": "n", "confidence": 1.5}),
    ("POST", "/patterns/staged", {"pattern_id": "p", "pattern_type": "t", "name": ""}),
    ("POST", "/patterns/staged", {"pattern_id": "bad id", "pattern_type": "t", "name": "n"}),
    ("POST", "/patterns/staged/bad%20id/promote", {}),
    ("POST", "/patterns/staged/p/reject", {"reason": ""}),
    ("GET", "/patterns/library?q=" + "x" * 201, None),
    ("PUT", "/state/bad%20id", {"state": {}}),
    ("PUT", "/state/s", {"state": "not a dict"}),
    ("PUT", "/memory/k", {"ttl": 5}),
])
def test_bad_input_is_400_with_a_json_body(api, site_memory, make_token, method, path, body):
    steward = make_token("steward")
    assert_error(api.request(method, path, body, token=steward), 400, "invalid_input")


@pytest.mark.parametrize("method,path,data", [
    ("PUT", "/memory/k", '{"value": NaN}'),
    ("PUT", "/memory/k", '{"value": 1, "ttl": Infinity}'),
    ("PUT", "/memory/k", '{"value": 1, "ttl": NaN}'),
    ("PUT", "/memory/k", "[" * 100_000),
    ("PUT", "/memory/k", '{"value": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("POST", "/tasks", '{"task_id": "a", "task_type": "b", "context": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}"),
    ("POST", "/tasks", '{"task_id": "a", "task_type": "b", "priority": 1e400}'),
    ("POST", "/tasks", '{"task_id": "a", "task_type": "b", "priority": 10000000000000000000000000000}'),
    ("POST", "/tasks", '{"task_id": "a\\u0000", "task_type": "b"}'),
    ("POST", "/tasks", "\ufeff{}"),
    ("GET", "/patterns/library?q=%00&type=%00", None),
    ("GET", "/tasks?limit=99999999999999999999999", None),
    ("GET", "/signals?wait=nan", None),
    ("GET", "/signals?wait=inf", None),
    ("GET", "/signals?wait=1e-300", None),
    ("POST", "/tasks/claim", '{"task_type": "x", "lease_seconds": 1e-9}'),
    ("POST", "/agents/heartbeat", '{"lease_seconds": 1e300}'),
    ("POST", "/patterns/staged", '{"pattern_id": "p", "pattern_type": "t", "name": "n", "confidence": NaN}'),
    ("POST", "/patterns/staged",
     '{"pattern_id": "p", "pattern_type": "t", "name": "n", "code": "' + "x" * 100_001 + '"}'),
    ("POST", "/patterns/staged/p/promote", '{"note": "' + "x" * 3000 + '"}'),
    ("GET", "/memory/k?agent_id=" + "a" * 5000, None),
    ("PUT", "/state/s", '{"state": {"a": NaN}}'),
])
def test_odd_inputs_get_an_answer_never_a_5xx(api, site_memory, make_token, method, path, data):
    response = api.request(method, path, token=make_token("steward"), data=data.encode() if data else None)
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert_error(response, response.status_code)


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Bearer emp_not-a-real-token", "Bearer not-even-the-prefix", "Basic dXNlcjpwYXNz",
    "Bearer emp_" + "x" * 500, "bearer", "Token emp_abc",
])
def test_missing_or_bad_token_is_401(api, site_memory, header):
    headers = {} if header is None else {"Authorization": header}
    response = api.get("/stats", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_is_401(api, site_memory, make_token):
    from coordination.tokens import revoke_tokens

    agent = make_token("steward", "leaving")
    assert api.get("/stats", token=agent).status_code == 200
    assert revoke_tokens("leaving") == 1
    assert_error(api.get("/stats", token=agent), 401, "unauthorized")


def test_unknown_paths_and_things_are_404(api, site_memory, agents):
    token = agents["steward"]
    for path in ("/no-such-endpoint", "/tasks/x/y/z", "/api/v2/health", "/api/v1/"):
        body = assert_error(api.get(path, token=token), 404, "not_found")
        assert "<" not in body["detail"]
    assert_error(api.get("/tasks/nope", token=token), 404, "not_found")
    assert_error(api.post("/tasks/nope/complete", {}, token=token), 404, "not_found")
    assert_error(api.post("/tasks/nope/heartbeat", token=token), 404, "not_found")
    assert_error(api.post("/patterns/staged/nope/promote", token=token), 404, "not_found")
    assert_error(api.post("/patterns/staged/nope/reject", {"reason": "r"}, token=token), 404, "not_found")
    assert_error(api.get("/memory/nope", token=token), 404, "not_found")
    assert_error(api.get("/state/nope", token=token), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/health"), ("POST", "/health"), ("PUT", "/tasks"), ("DELETE", "/tasks/claim"),
    ("PATCH", "/memory/k"), ("GET", "/tasks/claim"), ("DELETE", "/patterns/library"),
])
def test_a_wrong_method_is_405_as_json(api, site_memory, agents, method, path):
    response = api.request(method, path, {}, token=agents["steward"])
    assert_error(response, 405, "method_not_allowed")
    assert response.has_header("Allow")


def test_conflicts_are_409(api, site_memory, agents):
    steward, validator = agents["steward"], agents["validator"]
    assert api.post("/tasks", {"task_id": "once", "task_type": "x"}, token=steward).status_code == 201
    assert_error(api.post("/tasks", {"task_id": "once", "task_type": "x"}, token=steward), 409, "conflict")
    api.post("/patterns/staged", pattern_body(), token=agents["contributor"])
    assert api.post("/patterns/staged/p1/promote", token=validator).status_code == 200
    assert_error(api.post("/patterns/staged/p1/promote", token=validator), 409, "conflict")
    assert_error(api.post("/patterns/staged/p1/reject", {"reason": "late"}, token=steward), 409, "conflict")
    # staging another agent's pattern id is refused
    other = api.post("/patterns/staged", pattern_body("p3"), token=agents["contributor"])
    assert other.status_code == 201
    taken = api.post("/patterns/staged", pattern_body("p3"), token=validator)
    assert taken.status_code in (403, 409)
    assert_error(taken, taken.status_code)


def test_a_body_over_the_upload_limit_is_413(api, site_memory, agents):
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    big = b'{"value": "' + b"x" * (size + 10) + b'"}'
    assert_error(api.put("/memory/big", data=big, token=agents["contributor"]), 413, "too_large")
    assert_error(api.post("/tasks", data=big, token=agents["contributor"]), 413, "too_large")


def test_a_value_over_the_librarys_limit_is_413(api, site_memory, agents):
    limit = site_memory.config.max_value_bytes
    assert limit < settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100  # so the body itself is accepted
    value = "x" * (limit + 1)
    contributor = agents["contributor"]
    assert_error(api.put("/memory/big", {"value": value}, token=contributor), 413, "too_large")
    assert_error(api.post("/signals", {"signal_type": "big", "data": value}, token=contributor), 413, "too_large")
    assert_error(api.post("/tasks", {"task_id": "big", "task_type": "x", "context": {"v": value}},
                          token=contributor), 413, "too_large")
    assert_error(api.put("/state/s", {"state": {"v": value}}, token=contributor), 413, "too_large")
    api.post("/sessions", {"session_id": "s"}, token=contributor)
    assert_error(api.put("/sessions/s/context/k", {"value": value}, token=contributor), 413, "too_large")
    assert_error(api.get("/memory/big", token=contributor), 404)  # nothing was stored
    assert api.put("/memory/fits", {"value": "x" * (limit - 100)}, token=contributor).status_code == 200


@pytest.fixture
def dead_redis(db):
    """The site's memory on a private redis-server that is then killed."""
    server = RedisServer()
    memory = RedisShortTermMemory(server.url)
    memory.stash(AgentCredentials("a", AccessTier.CONTRIBUTOR, TEAM), "k", 1)  # it worked before
    with memory_in_use(memory):
        server.kill()
        yield memory
    memory.client.close()
    server.stop()


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/health", None),
    ("GET", "/stats", None),
    ("GET", "/memory/k?agent_id=a", None),
    ("PUT", "/memory/k", {"value": 1}),
    ("POST", "/tasks", {"task_id": "t", "task_type": "x"}),
    ("POST", "/tasks/claim", {"task_type": "x"}),
    ("GET", "/signals", None),
    ("GET", "/signals?wait=1", None),
    ("POST", "/sessions", {"session_id": "s"}),
    ("GET", "/patterns/staged", None),
    ("POST", "/patterns/staged/p/promote", None),
    ("GET", "/agents", None),
])
def test_redis_down_is_503_with_retry_after(api, dead_redis, make_token, method, path, body):
    token = None if path == "/health" else make_token("steward")
    response = api.request(method, path, body, token=token)
    assert_error(response, 503, "memory_unavailable")
    assert response["Retry-After"] == "1"


# -- long-poll ------------------------------------------------------------------------------------------


def test_a_long_poll_returns_a_signal_sent_while_it_waits(api, site_memory, make_token):
    waiter = make_token("contributor", "waiter")
    sender = AgentCredentials("sender", AccessTier.CONTRIBUTOR, TEAM)

    def send_later():
        time.sleep(0.3)
        site_memory.send_signal(sender, "wake_up", {"n": 1}, "waiter")

    thread = threading.Thread(target=send_later)
    started = time.monotonic()
    thread.start()
    response = api.get("/signals?wait=1", token=waiter)
    elapsed = time.monotonic() - started
    thread.join()
    assert response.status_code == 200
    assert [(s["sender"], s["signal_type"], s["data"]) for s in response.json()] == [("sender", "wake_up", {"n": 1})]
    assert 0.25 < elapsed < 0.95


def test_a_long_poll_with_nothing_to_receive_returns_empty_after_the_wait(api, site_memory, make_token):
    waiter = make_token("observer")
    started = time.monotonic()
    response = api.get("/signals?wait=0.5&type=never", token=waiter)
    assert response.status_code == 200 and response.json() == []
    assert 0.45 < time.monotonic() - started < 3


# -- promotion: exactly once, nothing lost ----------------------------------------------------------------


def test_two_validators_racing_promote_exactly_once(site_memory, make_token):
    first, second = make_token("validator", "val-1"), make_token("validator", "val-2")
    author = make_token("contributor", "author")
    assert Api().post("/patterns/staged", pattern_body("raced"), token=author).status_code == 201
    barrier = threading.Barrier(2)
    statuses = {}

    def promote(agent):
        try:
            client = Api()
            barrier.wait(5)
            statuses[agent.agent_id] = client.post("/patterns/staged/raced/promote", {"note": agent.agent_id},
                                                   token=agent)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=promote, args=(agent,)) for agent in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in statuses.values())
    assert codes == [200, 409], [r.content for r in statuses.values()]
    loser = next(r for r in statuses.values() if r.status_code == 409)
    assert_error(loser, 409, "conflict")
    winner = next(agent for agent, r in statuses.items() if r.status_code == 200)
    assert PatternDecision.objects.filter(pattern_id="raced").count() == 1
    assert LibraryPattern.objects.filter(pattern_id="raced").count() == 1
    assert LibraryPattern.objects.get(pattern_id="raced").promoted_by == winner
    assert PatternDecision.objects.get(pattern_id="raced").decided_by == winner


def test_a_database_failure_during_promote_is_503_and_the_pattern_stays_staged(api, site_memory, agents,
                                                                                 monkeypatch):
    api.post("/patterns/staged", pattern_body(), token=agents["contributor"])

    def broken(*args, **kwargs):
        raise DatabaseError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(LibraryPattern.objects, "create", broken)
        response = api.post("/patterns/staged/p1/promote", {"note": "n"}, token=agents["validator"])
    assert_error(response, 503, "library_unavailable")
    assert response["Retry-After"] == "1"
    queue = api.get("/patterns/staged", token=agents["observer"]).json()
    assert [(p["pattern_id"], p["agent_id"], p["confidence"]) for p in queue] == [
        ("p1", agents["contributor"].agent_id, 0.9)]
    assert not PatternDecision.objects.exists() and not LibraryPattern.objects.exists()
    # once the database is back, the same promotion goes through
    again = api.post("/patterns/staged/p1/promote", {"note": "n"}, token=agents["validator"])
    assert again.status_code == 200, again.content
    assert PatternDecision.objects.count() == 1 and LibraryPattern.objects.count() == 1


def test_a_database_failure_during_reject_is_503_and_the_pattern_stays_staged(api, site_memory, agents,
                                                                                monkeypatch):
    api.post("/patterns/staged", pattern_body(), token=agents["contributor"])

    def broken(*args, **kwargs):
        raise DatabaseError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(PatternDecision.objects, "create", broken)
        response = api.post("/patterns/staged/p1/reject", {"reason": "r"}, token=agents["validator"])
    assert_error(response, 503, "library_unavailable")
    assert [p["pattern_id"] for p in api.get("/patterns/staged", token=agents["observer"]).json()] == ["p1"]
    assert api.post("/patterns/staged/p1/reject", {"reason": "r"}, token=agents["validator"]).status_code == 200


# -- management commands -----------------------------------------------------------------------------------


def test_create_agent_token_prints_a_working_token_and_stores_only_its_hash(api, site_memory, make_token):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_agent_token", "reviewer-7", team=TEAM, tier="validator", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("emp_") and len(token) > 40
    assert token not in err.getvalue() and "shown only once" in err.getvalue()
    row = AgentToken.objects.get(agent_id="reviewer-7")
    assert (row.team_id, row.access_tier) == (TEAM, AccessTier.VALIDATOR)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    dump = database_dump()
    assert "reviewer-7" in dump  # the dump sees the row
    assert token not in dump and token[10:] not in dump
    assert api.get("/stats", token=token).status_code == 200
    api.post("/patterns/staged", pattern_body(), token=make_token("contributor"))
    assert api.post("/patterns/staged/p1/promote", token=token).json()["promoted_by"] == "reviewer-7"


def database_dump() -> str:
    """Every row of every table, as text (SQLite and PostgreSQL alike)."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows += [repr(row) for row in cursor.fetchall()]
    return "\n".join(rows)


def test_revoke_agent_token_makes_it_401(api, site_memory):
    out = io.StringIO()
    call_command("create_agent_token", "leaver", team=TEAM, tier="contributor", stdout=out, stderr=io.StringIO())
    token = out.getvalue().strip()
    assert api.get("/stats", token=token).status_code == 200
    done = io.StringIO()
    call_command("revoke_agent_token", "leaver", stdout=done)
    assert "revoked 1" in done.getvalue()
    assert_error(api.get("/stats", token=token), 401, "unauthorized")
    with pytest.raises(CommandError, match="no live token"):
        call_command("revoke_agent_token", "leaver", stdout=io.StringIO())


@pytest.mark.parametrize("args,message", [
    (["agent-1", "--team", TEAM, "--tier", "overlord"], "invalid choice"),
    (["bad agent!", "--team", TEAM, "--tier", "observer"], "agent id"),
    (["agent-1", "--team", "bad/team", "--tier", "observer"], "team id"),
    (["agent-1", "--tier", "observer"], "--team"),
])
def test_create_agent_token_refuses_bad_input_with_a_command_error(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_agent_token", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not AgentToken.objects.exists()


@pytest.mark.parametrize("args", [
    ["create_agent_token", "agent-1", "--team", TEAM, "--tier", "overlord"],
    ["create_agent_token", "bad agent!", "--team", TEAM, "--tier", "observer"],
])
def test_the_commands_print_no_traceback_on_bad_input(tmp_path, args):
    env = {**os.environ, "EMPATHY_DB_PATH": str(tmp_path / "db.sqlite3"),
           "DJANGO_SETTINGS_MODULE": "empathy_site.settings"}
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr.lower()
    assert done.stdout == ""

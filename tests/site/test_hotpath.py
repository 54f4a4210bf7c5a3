"""The hot path (``coordination.hotpath``): the same answers as the Django API, without Django.

Each scenario runs twice, in two teams set up alike: once through the Django API alone and once
through the hot path in front of it. Statuses, bodies (times aside) and headers must be the same,
and the hot path must have answered the ordinary requests itself (the Django app behind it counts
what it is given). What the hot path does not answer, it hands over whole, body included.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async

from coordination.hotpath import HotPath
from coordination.tokens import issue_token, revoke_tokens
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, EmpathyError, MemoryUnavailableError
from empathy_os.aio import AsyncAgentCoordinator
from empathy_os.local_credentials import LocalCredentials
from empathy_site.asgi import django_api_app
from tests.support import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)

TIMES = ("lease_expires_at", "claimed_at", "created_at", "finished_at")


class Counting:
    """An ASGI app that counts the requests it is given (the Django API behind the hot path)."""

    def __init__(self, app):
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.app(scope, receive, send)


async def call(app, method: str, path: str, body=None, token: str = "", raw: bytes | None = None) -> dict:
    """One request through ``app``: a JSON ``body`` (or ``raw`` bytes) with the agent's bearer token."""
    data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    answer = await asgi_request(app, method, path, data, headers)
    return {"status": answer["status"], "body": json.loads(answer["body"]) if answer["body"] else None,
            "headers": {k.decode().lower(): v.decode() for k, v in answer["headers"]}}


async def team_of(memory, team: str) -> dict:
    """A team with a registered worker, an observer, a steward, and two pending tasks."""
    tokens = {}
    for agent, tier in (("worker", "contributor"), ("idle", "contributor"), ("watcher", "observer"),
                        ("boss", "steward")):
        tokens[agent] = (await database_sync_to_async(issue_token)(agent, team, tier, created_by="tests"))[0]
    coordinator = AgentCoordinator(memory, team, AgentCredentials("boss", AccessTier.STEWARD, team))
    coordinator.register_agent("worker", ["build"])
    coordinator.add_tasks([AgentTask("a1", "build", priority=3), AgentTask("a2", "build", priority=9)])
    return tokens


async def scenario(app, tokens: dict) -> list[dict]:
    """The hot endpoints' cases, in order; each answer as the agent sees it."""
    worker, answers = tokens["worker"], []

    async def ask(path, body=None, token=worker, raw=None):
        answers.append(await call(app, "POST", path, body, token, raw))
        return answers[-1]["body"]

    await ask("/api/v1/tasks/claim", {"task_type": "nothing-here"})   # 204 (the first call caches the token)
    task = await ask("/api/v1/tasks/claim", raw=b"")                   # 200: by capabilities, the best first
    lease = task["lease_token"]
    await ask("/api/v1/tasks/a2/heartbeat", {"lease_seconds": 30, "lease_token": lease})
    await ask("/api/v1/tasks/a2/heartbeat", raw=b"")                   # empty body: the defaults
    await ask("/api/v1/tasks/a2/complete", {"result": {"ok": 1}, "lease_token": "999"})  # 409 lease: stale token
    await ask("/api/v1/tasks/a2/complete", {"result": {"ok": 1}, "lease_token": lease})  # 200
    await ask("/api/v1/tasks/a2/complete", {"result": {"ok": 2}})      # 409: completed already
    await ask("/api/v1/tasks/nope/complete", {"result": {}})           # 404
    await ask("/api/v1/tasks/nope/heartbeat", {})                      # 404
    await ask("/api/v1/tasks/claim", {"task_type": "build"}, token=tokens["watcher"])  # 403: observer
    await ask("/api/v1/tasks/claim", {"task_type": "build"}, token=tokens["watcher"])  # 403 again, cached
    await ask("/api/v1/tasks/claim", {"agent_id": "worker"}, token=tokens["idle"])     # 403: not a steward
    await ask("/api/v1/tasks/claim", {}, token=tokens["idle"])         # 400: not registered, no type
    await ask("/api/v1/tasks/claim", {"agent_id": "worker", "lease_seconds": 5}, token=tokens["boss"])
    await ask("/api/v1/tasks/a1/complete", {"result": [1, "two"], "agent_id": "worker"}, token=tokens["boss"])
    await ask("/api/v1/tasks/claim", {"task_type": "build", "unknown_field": 1})  # 204, the extra field ignored
    return answers


def comparable(answer: dict, team: str) -> dict:
    body = answer["body"]
    if isinstance(body, dict):
        body = {k: (type(v).__name__ if k in TIMES else v) for k, v in body.items()}
    text = json.dumps(body).replace(team, "<team>")
    return {"status": answer["status"], "body": text,
            "headers": sorted(set(answer["headers"]) - {"content-length"})}


async def test_it_answers_every_case_as_the_django_api_does(site_memory):
    plain_tokens = await team_of(site_memory, "plain")
    hot_tokens = await team_of(site_memory, "hot")
    plain = await scenario(django_api_app, plain_tokens)
    behind = Counting(django_api_app)
    hot = await scenario(HotPath(behind), hot_tokens)
    assert [a["status"] for a in plain] == [204, 200, 200, 200, 409, 200, 409, 404, 404, 403, 403, 403, 400, 200,
                                            200, 204]
    assert [comparable(a, "hot") for a in hot] == [comparable(a, "plain") for a in plain]
    # Django saw only each token's first request (not cached yet): worker, watcher, idle, boss.
    assert behind.calls == 4
    assert hot[1]["body"]["task_id"] == "a2" and hot[5]["body"]["agent_id"] == "worker"
    assert hot[4]["body"]["error"] == "lease" and hot[6]["body"]["error"] == "conflict"
    assert hot[12]["body"]["error"] == "invalid_input"
    assert hot[1]["headers"]["content-type"] == "application/json; charset=utf-8"
    assert hot[1]["headers"]["cache-control"] == "no-store"
    assert int(hot[1]["headers"]["content-length"]) == len(json.dumps(hot[1]["body"]).encode())


@pytest.mark.parametrize("method,path,raw,status,code", [
    ("POST", "/api/v1/tasks/claim", b"{not json", 400, "invalid_input"),
    ("POST", "/api/v1/tasks/claim", b'{"lease_seconds": "soon"}', 400, "invalid_input"),
    ("POST", "/api/v1/tasks/claim", b'{"agent_id": "not an id!"}', 400, "invalid_input"),
    ("POST", "/api/v1/tasks/a1/complete", b"", 400, "invalid_input"),
    ("POST", "/api/v1/tasks/claim", b'{"task_type": "' + b"x" * (3 * 1024 * 1024) + b'"}', 413, "too_large"),
    ("GET", "/api/v1/tasks/claim", b"", 405, "method_not_allowed"),
])
async def test_it_hands_what_is_not_ordinary_to_django_body_and_all(site_memory, method, path, raw, status, code):
    tokens = await team_of(site_memory, "t1")
    behind = Counting(django_api_app)
    app = HotPath(behind)
    await call(app, "POST", "/api/v1/tasks/claim", {"task_type": "none"}, tokens["worker"])  # caches the token
    before = behind.calls
    answer = await call(app, method, path, token=tokens["worker"], raw=raw)
    assert (answer["status"], answer["body"]["error"]) == (status, code)
    assert behind.calls == before + 1


@pytest.mark.parametrize("token", ["", "emp_not-a-real-token", "Basic abc"])
async def test_a_caller_without_a_known_token_is_djangos_401(site_memory, token):
    behind = Counting(django_api_app)
    answer = await call(HotPath(behind), "POST", "/api/v1/tasks/claim", {}, token)
    assert answer["status"] == 401 and answer["body"]["error"] == "unauthorized"
    assert answer["headers"]["www-authenticate"] == "Bearer"
    assert behind.calls == 1


async def test_a_revoked_token_is_refused_at_once_not_when_its_local_copy_expires(site_memory):
    tokens = await team_of(site_memory, "t1")
    behind = Counting(django_api_app)
    app = HotPath(behind)
    claim = ("POST", "/api/v1/tasks/claim", {"task_type": "none"}, tokens["worker"])
    assert (await call(app, *claim))["status"] == 204      # Django: looks the token up, caches it
    await asyncio.sleep(0.2)                                  # the revocations listener subscribes
    assert (await call(app, *claim))["status"] == 204      # hot path, from the local copy
    calls = behind.calls
    await database_sync_to_async(revoke_tokens)("worker", "t1")
    started = time.monotonic()
    while (answer := await call(app, *claim))["status"] == 204 and time.monotonic() - started < 3:
        await asyncio.sleep(0.01)
    assert answer["status"] == 401
    assert time.monotonic() - started < 1.0  # the announcement, not the 5 s lifetime of the local copy
    assert behind.calls > calls              # refused by Django: the token is no longer cached anywhere


async def test_local_credentials_keep_nothing_unless_heard_and_current(site_memory):
    local = LocalCredentials(site_memory.aio)
    creds = AgentCredentials("a", AccessTier.CONTRIBUTOR, "t1")
    digest = "0" * 64
    local.put(digest, creds, local.generation)
    assert local.get(digest) is None            # not subscribed yet: nothing is kept
    for _ in range(100):
        if local.listening:
            break
        await asyncio.sleep(0.01)
    assert local.listening
    started_in = local.generation
    local._forget(["f" * 64])                    # a revocation arrives while a lookup is under way
    local.put(digest, creds, started_in)
    assert local.get(digest) is None            # the older answer is not stored
    local.put(digest, creds, local.generation)
    assert local.get(digest) == creds
    local.entries[digest] = (creds, time.monotonic() - 1)
    assert local.get(digest) is None            # past its lifetime
    local.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await local.task
    assert not local.listening and not local.entries


@pytest.mark.parametrize("raised,status,code", [
    (EmpathyError("Redis refused the operation: ERR odd"), 500, "server_error"),
    (RuntimeError("a bug"), 500, "server_error"),
    (MemoryUnavailableError("Redis did not answer"), 503, "memory_unavailable"),
])
async def test_an_unexpected_failure_is_the_apis_500_and_a_known_one_its_row(site_memory, monkeypatch, raised,
                                                                               status, code):
    tokens = await team_of(site_memory, "t1")
    app = HotPath(django_api_app)
    await call(app, "POST", "/api/v1/tasks/claim", {"task_type": "none"}, tokens["worker"])  # caches the token

    async def failing(*args, **kwargs):
        raise raised

    monkeypatch.setattr(AsyncAgentCoordinator, "claim_task", failing)
    answer = await call(app, "POST", "/api/v1/tasks/claim", {"task_type": "build"}, tokens["worker"])
    assert (answer["status"], answer["body"]["error"]) == (status, code)
    plain = await call(django_api_app, "POST", "/api/v1/tasks/claim", {"task_type": "build"}, tokens["worker"])
    assert comparable(plain, "t1") == comparable(answer, "t1")
    if status == 503:
        assert answer["headers"]["retry-after"] == "1"
    else:
        assert answer["body"]["detail"] == "internal error; it has been logged"  # nothing of the error leaks

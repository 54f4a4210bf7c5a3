"""Fixtures of the site tests: the site's memory, agent tokens per tier, and a JSON client for /api/v1.

The API's views are async: under Django's test ``Client`` they run in an event loop of their own and
call the ORM from other threads, with their own database connections. Tests that touch the database
therefore use ``pytest.mark.django_db(transaction=True)``: rows are committed, so every thread sees
them (a plain ``django_db`` keeps them in the test's own uncommitted transaction).
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass

import pytest
from django.test import Client

from coordination.memory import memory_in_use
from coordination.tokens import issue_token
from empathy_os import AccessTier

API = "/api/v1"
TEAM = "t1"
TIERS = ("observer", "contributor", "validator", "steward")


@pytest.fixture
def site_memory(memory):
    """Make the ``memory`` fixture (mock or real redis-server) the site's memory for this test."""
    with memory_in_use(memory):
        yield memory


@dataclass(frozen=True)
class Agent:
    """An agent with a live token: what a request is authenticated as."""

    agent_id: str
    team_id: str
    tier: AccessTier
    token: str


@pytest.fixture
def make_token(db):
    """``make_token(tier, agent_id=None, team=TEAM) -> Agent``: issue a real token (an AgentToken row).

    The agent id defaults to the tier's name plus a counter, so two calls give two agents.
    """
    counter = {}

    def factory(tier, agent_id: str | None = None, team: str = TEAM) -> Agent:
        tier = AccessTier.parse(tier)
        if agent_id is None:
            n = counter[tier] = counter.get(tier, 0) + 1
            agent_id = f"{tier.name.lower()}-{n}"
        token, row = issue_token(agent_id, team, tier, created_by="tests")
        return Agent(row.agent_id, row.team_id, row.access_tier, token)

    return factory


@pytest.fixture
def agents(make_token):
    """One agent per tier of team ``t1``, by tier name: ``agents["validator"].token``."""
    return {tier: make_token(tier) for tier in TIERS}


def _token_of(token) -> str | None:
    if token is None or isinstance(token, str):
        return token
    return token.token


class Api:
    """A JSON client for the agent API. Paths are relative to /api/v1 unless they start with /api/.

    ``token`` is a token string or an :class:`Agent`; ``json`` is sent as the JSON body; ``data`` is
    sent as is (bytes or str), for malformed bodies; ``headers`` are extra request headers.
    """

    def __init__(self, client: Client | None = None):
        self.client = client or Client(raise_request_exception=False)

    def url(self, path: str) -> str:
        return path if path.startswith("/api/") else API + path

    def request(self, method: str, path: str, json=None, *, token=None, data=None, headers=None,
                content_type: str = "application/json"):
        extra = {}
        token = _token_of(token)
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        if data is None and json is not None:
            data = jsonlib.dumps(json)
        call = getattr(self.client, method.lower())
        if method.upper() in ("GET", "HEAD"):
            return call(self.url(path), **extra)
        return call(self.url(path), data if data is not None else b"", content_type=content_type, **extra)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.request("PUT", path, json, **kwargs)

    def delete(self, path, json=None, **kwargs):
        return self.request("DELETE", path, json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json, **kwargs)


@pytest.fixture
def api():
    """The JSON client; a fresh Django test ``Client`` per test (exceptions become responses)."""
    return Api()


def assert_error(response, status: int, code: str | None = None) -> dict:
    """``response`` has ``status`` and the API's JSON error body; returns the body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body

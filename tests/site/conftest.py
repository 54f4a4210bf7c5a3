"""Fixtures of the site tests: the site's memory, agent tokens per tier, and a JSON client for /api/v1.

The API's views are async: under Django's test ``Client`` they run in an event loop of their own and
call the ORM from other threads, with their own database connections. Tests that touch the database
therefore use ``pytest.mark.django_db(transaction=True)``: rows are committed, so every thread sees
them (a plain ``django_db`` keeps them in the test's own uncommitted transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from coordination.memory import memory_in_use
from coordination.tokens import issue_token
from empathy_os import AccessTier
from tests.support import Api

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


@pytest.fixture
def api():
    """The JSON client; a fresh Django test ``Client`` per test (exceptions become responses)."""
    return Api()

"""The chapter's code blocks, unchanged, as clients of a running site (``empathy_os.client``).

Each script of ``examples/`` runs in its own process with ``EMPATHY_URL`` set, so its
``get_redis_memory()`` is a client of the site (uvicorn, in a thread of this process, serving the
test's memory: fakeredis or the private redis-server). It prints what it prints on the library
(``EXPECTED`` of the direct runs, for the site's backend): every call went through the token-checked
API.

Over HTTP the caller is the token, so each agent the chapter names gets a token of the tier the
chapter gives it (``EmpathyOS(..., access_tier=...)``). Two kinds of block cannot work with an agent's
token and get a steward's: ``AgentCoordinator(memory, team_id=...)`` and ``TeamSession(memory, ...)``
without credentials act as the team's steward (agent ``coordinator``), registering and claiming for
other agents, so their team's ``coordinator`` token is a steward's. ``troubleshoot_mock`` builds a
local ``RedisShortTermMemory(use_mock=True)`` by design: it prints the same over HTTP, never touching
the site.
"""

from __future__ import annotations

import pytest

from coordination.tokens import issue_token
from empathy_os import AgentCoordinator, AgentCredentials, AccessTier

from .test_chapter_examples import EXPECTED, assert_prints, run_example

#: (agent, team, tier) of every identity the chapter's blocks use.
KEYRING = [
    ("coordinator", "review_team", "steward"),   # Steps 4-7, Part 6: AgentCoordinator(memory, "review_team")
    ("coordinator", "code_review", "steward"),   # complete example: AgentCoordinator(memory, "code_review")
    ("coordinator", "default", "steward"),       # TeamSession(memory, ...) without credentials
    ("code_reviewer", "default", "contributor"),
    ("lead_reviewer", "default", "validator"),
    ("performance_agent", "default", "contributor"),
    ("senior_architect", "default", "validator"),
    ("long_running_agent", "default", "contributor"),
    ("security", "default", "contributor"),
    ("lead", "default", "validator"),
]


@pytest.fixture
def site_env(live_site) -> dict:
    """What a script needs to be a client of the site: its URL and one token per identity."""
    tokens = [issue_token(agent, team, tier, created_by="tests")[0] for agent, team, tier in KEYRING]
    return {"EMPATHY_URL": live_site.url, "EMPATHY_TOKENS": ",".join(tokens)}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_it_prints_what_the_chapter_says_over_http(script, backend, request, site_env):
    proc = run_example(script, backend, request, site=site_env)
    assert_prints(proc, EXPECTED[script](backend))


def test_its_work_is_in_the_sites_memory(backend, request, site_env, memory):
    proc = run_example("step07_aggregate_results", backend, request, site=site_env)
    assert proc.returncode == 0, proc.stderr
    results = AgentCoordinator(memory, team_id="review_team").aggregate_results()
    assert results["by_agent"] == {"security_agent": 1}
    assert memory.get_stats()["tasks_pending"] == 2
    # it was done by the tokens' agents: the task was added by the team's steward token
    task = AgentCoordinator(memory, "review_team", AgentCredentials("x", AccessTier.OBSERVER, "review_team")).get_task("sec_001")
    assert task.created_by == "coordinator" and task.assigned_to == "security_agent"


def test_an_agent_without_a_token_is_refused_with_the_clients_message(backend, request, live_site):
    token = issue_token("code_reviewer", "default", "contributor", created_by="tests")[0]
    proc = run_example("step10_stage_pattern", backend, request,
                       site={"EMPATHY_URL": live_site.url, "EMPATHY_TOKEN": token})
    assert proc.returncode == 1
    assert "AccessDeniedError: this client has no token for agent performance_agent (team default)" in proc.stderr

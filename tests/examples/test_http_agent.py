"""``examples/http_agent.py``: an agent process working through ``empathy_os.client`` against a live site."""

from __future__ import annotations

import pytest

from coordination.tokens import issue_token
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask

from .test_chapter_examples import EXAMPLES, run_example

TEAM = "review_team"


@pytest.fixture
def agent_env(live_site) -> dict:
    token = issue_token("reviewer_1", TEAM, "contributor", created_by="tests")[0]
    return {"EMPATHY_URL": live_site.url, "EMPATHY_TOKEN": token}


def test_it_is_under_half_its_first_length():
    assert len((EXAMPLES / "http_agent.py").read_text().splitlines()) < 45  # was 90 lines


def test_it_claims_completes_and_tells_the_team(backend, request, agent_env, memory):
    lead = AgentCoordinator(memory, TEAM)
    lead.add_tasks([AgentTask("sec_1", "security_review", priority=9, context={"files": ["a.py", "b.py"]}),
                    AgentTask("sec_2", "security_review", priority=5, context={"files": ["c.py"]}),
                    AgentTask("style_1", "style_review")])
    proc = run_example("http_agent", backend, request, site=agent_env, args=["--once"])
    assert proc.stderr == "" and proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "registered reviewer_1 in review_team",
        "completed sec_1: {'files_reviewed': 2, 'warnings': 2}",
        "completed sec_2: {'files_reviewed': 1, 'warnings': 1}",
    ]
    assert lead.aggregate_results()["by_agent"] == {"reviewer_1": 2}
    assert [t.task_id for t in lead.list_tasks("pending")] == ["style_1"]  # not its capability
    watcher = AgentCredentials("watcher", AccessTier.OBSERVER, TEAM)
    signals = memory.receive_signals(watcher, "review_complete")
    assert [(s["sender"], s["data"]["task"]) for s in signals] == [("reviewer_1", "sec_1"), ("reviewer_1", "sec_2")]


def test_it_takes_its_task_types_from_the_command_line(backend, request, agent_env, memory):
    lead = AgentCoordinator(memory, TEAM)
    lead.add_task(AgentTask("style_1", "style_review"))
    proc = run_example("http_agent", backend, request, site=agent_env, args=["--once"])
    assert proc.stdout.splitlines() == ["registered reviewer_1 in review_team"]  # security_review only
    proc = run_example("http_agent", backend, request, site=agent_env, args=["--once", "style_review"])
    assert proc.stdout.splitlines()[1:] == ["completed style_1: {'files_reviewed': 0, 'warnings': 0}"]
    assert lead.get_agents()[0]["capabilities"] == ["style_review"]


def test_a_revoked_token_is_a_clear_error(backend, request, agent_env):
    from coordination.tokens import revoke_tokens

    revoke_tokens("reviewer_1")
    proc = run_example("http_agent", backend, request, site=agent_env, args=["--once"])
    assert proc.returncode == 1
    assert "TokenRejectedError: send a valid agent token" in proc.stderr

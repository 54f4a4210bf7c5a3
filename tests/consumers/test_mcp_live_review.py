"""An agent speaking MCP (the SDK's client, over streamable HTTP to the live site's ``/mcp``) claims a
task, completes it and stages a pattern; a validator's review queue, open on a WebSocket, shows the
pattern without a reload. The agent's calls and the page meet only in Redis: the API writes the change
and its event, the relay (driven here) forwards the event, the consumer renders the list."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from coordination.tokens import issue_token
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask
from tests.mcp_support import call, mcp_over_http

from .conftest import connect
from .test_staging_consumer import PATH, receive_list

pytestmark = pytest.mark.django_db(transaction=True)

TEAM = "t1"


@pytest.fixture
def site_memory(site_memory):
    """The site's memory with one pending task in ``TEAM`` (so the relay joins its events stream)."""
    AgentCoordinator(site_memory, TEAM).add_task(AgentTask("sec_1", "security_review", "check the login form"))
    return site_memory


async def test_a_pattern_staged_over_mcp_appears_on_the_review_page(site_memory, live_site, cookies, relay):
    page, connected, _ = await connect(PATH, cookies["validator"])
    assert connected
    assert "Escape user text" not in await receive_list(page)
    token = (await database_sync_to_async(issue_token)("scout", TEAM, "contributor", created_by="tests"))[0]
    async with mcp_over_http(live_site.url, token) as agent:
        assert {t.name for t in (await agent.list_tools()).tools} >= {"claim_task", "complete_task", "stage_pattern"}
        task = (await call(agent, "claim_task", task_type="security_review"))["task"]
        await call(agent, "complete_task", task_id=task["task_id"], result={"warnings": 1},
                   lease_token=task["lease_token"])
        await call(agent, "stage_pattern", pattern_id="pat_escape", pattern_type="security", name="Escape user text",
                   confidence=0.92, code="{{ note }}  {# autoescaped #}")
    html = ""
    while "Escape user text" not in html:
        assert await relay.process_one() >= 1  # the agent's events: claimed, completed, staged
        html = await receive_list(page)
    assert 'id="pattern-t1--pat_escape"' in html and "92%" in html and "scout" in html
    observer = AgentCredentials("o", AccessTier.OBSERVER, TEAM)
    assert AgentCoordinator(site_memory, TEAM, observer).aggregate_results()["by_agent"] == {"scout": 1}
    await page.disconnect()

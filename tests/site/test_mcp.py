"""The MCP server, driven by the SDK's own client: over streamable HTTP at the site's ``/mcp`` (uvicorn,
serving the test's memory on both backends) and over stdio (``manage.py mcp``).

Every tool call goes through the agent API's checks: the caller is the bearer token, its tier is the
token's, and a refusal comes back as a tool error with the API's message, the server going on.
"""

from __future__ import annotations

import httpx
import pytest
from channels.db import database_sync_to_async

from coordination.tokens import issue_token
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, StagedPattern, TeamSession
from patterns import library
from tests.mcp_support import TOOLS, ToolFailed, call, mcp_over_http, mcp_over_stdio

pytestmark = pytest.mark.django_db(transaction=True)

TEAM = "t1"
STEWARD = AgentCredentials("lead", AccessTier.STEWARD, TEAM)


async def token(agent_id: str, tier: str, team: str = TEAM) -> str:
    return (await database_sync_to_async(issue_token)(agent_id, team, tier, created_by="tests"))[0]


def pattern_args(pattern_id: str = "pat_eager") -> dict:
    return {"pattern_id": pattern_id, "pattern_type": "optimization", "name": "Eager loading",
            "description": "select_related before iterating", "confidence": 0.9, "code": "qs.select_related('p')",
            "context": {"files": ["api.py"]}}


async def test_it_lists_every_tool_with_a_description_and_a_schema(live_site):
    async with mcp_over_http(live_site.url, await token("scout", "contributor")) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.description and tool.input_schema["type"] == "object"
    stage = next(t for t in tools if t.name == "stage_pattern").input_schema
    assert set(stage["required"]) == {"pattern_id", "pattern_type", "name"}
    assert stage["properties"]["confidence"]["maximum"] == 1


async def test_an_agent_claims_completes_and_stages_a_pattern(live_site, memory):
    lead = AgentCoordinator(memory, TEAM, STEWARD)
    lead.add_tasks([AgentTask("sec_1", "security_review", priority=9), AgentTask("sec_2", "security_review")])
    async with mcp_over_http(live_site.url, await token("scout", "contributor")) as client:
        assert (await call(client, "register_agent", capabilities=["security_review"]))["registered"]
        task = (await call(client, "claim_task"))["task"]
        assert (task["task_id"], task["assigned_to"]) == ("sec_1", "scout")
        assert (await call(client, "heartbeat"))["leases_renewed"] == 1
        await call(client, "complete_task", task_id="sec_1", result={"warnings": 2}, lease_token=task["lease_token"])
        assert (await call(client, "stage_pattern", **pattern_args()))["staged"]
        listed = (await call(client, "list_staged_patterns"))["patterns"]
    assert lead.aggregate_results()["by_agent"] == {"scout": 1}
    assert lead.get_task("sec_1").result == {"warnings": 2}
    staged = memory.get_staged_patterns(STEWARD)
    assert [(p.pattern_id, p.agent_id, p.code) for p in staged] == [("pat_eager", "scout", "qs.select_related('p')")]
    assert [p["pattern_id"] for p in listed] == ["pat_eager"]


async def test_an_observers_stage_call_is_a_tool_error_and_the_server_goes_on(live_site, memory):
    async with mcp_over_http(live_site.url, await token("watcher", "observer")) as client:
        with pytest.raises(ToolFailed, match=r"AccessDeniedError: .*contributor tier.*watcher is observer"):
            await call(client, "stage_pattern", **pattern_args())
        with pytest.raises(ToolFailed, match="AccessDeniedError"):
            await call(client, "claim_task")
        assert (await call(client, "retrieve", key="anything")) == {"key": "anything", "value": None}
    assert memory.get_staged_patterns(STEWARD) == []


async def test_bad_arguments_are_tool_errors_with_the_apis_message(live_site, memory):
    lead = AgentCoordinator(memory, TEAM, STEWARD)
    lead.add_task(AgentTask("theirs", "review"))
    lead.claim_task("other", "review")
    async with mcp_over_http(live_site.url, await token("scout", "contributor")) as client:
        with pytest.raises(ToolFailed, match="InvalidInputError: key 'bad key!' is invalid"):
            await call(client, "stash", key="bad key!", value=1)
        with pytest.raises(ToolFailed, match="NotFoundError: no session nope"):
            await call(client, "update_session_context", session_id="nope", key="k", value=1)
        with pytest.raises(ToolFailed, match="NotFoundError: task not-there does not exist"):
            await call(client, "complete_task", task_id="not-there")
        with pytest.raises(ToolFailed, match="LeaseError"):
            await call(client, "complete_task", task_id="theirs")
        with pytest.raises(ToolFailed):
            await call(client, "receive_signals", wait=31)  # over the schema's maximum


async def test_mcp_refuses_a_request_without_a_valid_token(live_site):
    for headers in ({}, {"Authorization": "Bearer emp_not-a-token"}, {"Authorization": "Basic eA=="}):
        response = httpx.post(live_site.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                              headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_signals_and_session_context(live_site, memory):
    TeamSession(memory, "pr_42", "review", team_id=TEAM, credentials=STEWARD).share("scope", {"files": 3})
    memory.send_signal(STEWARD, "go", {"n": 1}, "scout")
    async with mcp_over_http(live_site.url, await token("scout", "contributor")) as client:
        signals = (await call(client, "receive_signals", wait=5))["signals"]
        assert [(s["sender"], s["signal_type"], s["data"]) for s in signals] == [("lead", "go", {"n": 1})]
        assert (await call(client, "receive_signals", wait=0.2))["signals"] == []
        await call(client, "send_signal", signal_type="done", data={"ok": True})
        assert (await call(client, "get_session_context", session_id="pr_42", key="scope"))["value"] == {"files": 3}
        await call(client, "update_session_context", session_id="pr_42", key="finding", value=[1, 2])
        context = (await call(client, "get_session_context", session_id="pr_42"))["context"]
    assert context == {"finding": [1, 2], "scope": {"files": 3}}
    assert [s["sender"] for s in memory.receive_signals(STEWARD, "done")] == ["scout"]


async def test_search_library_finds_approved_patterns_and_counts_the_reuse(live_site, memory):
    author = AgentCredentials("author", AccessTier.CONTRIBUTOR, TEAM)
    memory.stage_pattern(author, StagedPattern("pat_v", "author", "security", "Validate at the boundary",
                                               description="validate input at API boundaries", code="check(x)"))
    await database_sync_to_async(library.promote)(memory, AgentCredentials("val", AccessTier.VALIDATOR, TEAM), "pat_v")
    async with mcp_over_http(live_site.url, await token("scout", "contributor")) as client:
        found = (await call(client, "search_library", query="boundary"))["patterns"]
        assert [p["pattern_id"] for p in found] == ["pat_v"]
        again = (await call(client, "search_library", query="boundary"))["patterns"]
    assert again[0]["reuse_count"] == found[0]["reuse_count"] + 1


async def test_resources_show_the_teams_agents_and_tasks(live_site, memory):
    lead = AgentCoordinator(memory, TEAM, STEWARD)
    lead.register_agent("alpha", ["review"])
    lead.add_task(AgentTask("t-1", "review"))
    async with mcp_over_http(live_site.url, await token("watcher", "observer")) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        tasks = await client.read_resource("empathy://team/tasks/pending")
        agents = await client.read_resource("empathy://team/agents/active")
    assert templates == {"empathy://team/tasks/{status}", "empathy://team/agents/{which}"}
    assert '"task_id": "t-1"' in tasks.contents[0].text
    assert '"agent_id": "alpha"' in agents.contents[0].text


async def test_stdio_to_a_running_site(live_site, memory):
    AgentCoordinator(memory, TEAM, STEWARD).add_task(AgentTask("t-1", "review"))
    async with mcp_over_stdio("--url", live_site.url, "--token", await token("scout", "contributor")) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        task = (await call(client, "claim_task", task_type="review"))["task"]
        await call(client, "complete_task", task_id=task["task_id"], result={"ok": 1})
    assert AgentCoordinator(memory, TEAM, STEWARD).aggregate_results()["by_agent"] == {"scout": 1}


def test_stdio_with_a_token_the_site_refuses_says_so_and_stops(live_site):
    import subprocess

    from tests.mcp_support import ROOT, stdio_params

    params = stdio_params("--url", live_site.url, "--token", "emp_nobody")
    done = subprocess.run([params.command, *params.args], cwd=ROOT, env=params.env, input="", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "CommandError: TokenRejectedError: send a valid agent token" in done.stderr
    assert "Traceback" not in done.stderr


def test_stdio_in_process_serves_this_processs_memory(redis_url, tmp_path):
    """``manage.py mcp`` without ``--url``: the tools run in the command's own process, on its own
    memory (here the private redis-server, which this test reads too) and database. (On a mock memory
    the command's data would live and die in its own process: nothing to look at from here.)"""
    import subprocess
    import sys

    import anyio

    from empathy_os import RedisShortTermMemory
    from tests.mcp_support import ROOT, stdio_params

    env = {"REDIS_URL": redis_url, "EMPATHY_DB_PATH": str(tmp_path / "db.sqlite3")}
    params = stdio_params(env=env)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=params.env, check=True, timeout=120)
    made = subprocess.run([*manage, "create_agent_token", "scout", "--team", TEAM, "--tier", "contributor"], cwd=ROOT,
                          env=params.env, check=True, capture_output=True, text=True, timeout=60)

    async def agent():
        async with mcp_over_stdio("--token", made.stdout.strip(), env=env) as client:
            await call(client, "stage_pattern", **pattern_args("pat_local"))
            with pytest.raises(ToolFailed, match="InvalidInputError: agent id 'not valid!' is invalid"):
                await call(client, "retrieve", key="k", agent_id="not valid!")
            return (await call(client, "list_staged_patterns"))["patterns"]

    listed = anyio.run(agent)
    memory = RedisShortTermMemory(redis_url)
    assert [p.agent_id for p in memory.get_staged_patterns(STEWARD)] == ["scout"]
    assert [p["pattern_id"] for p in listed] == ["pat_local"]
    memory.client.close()

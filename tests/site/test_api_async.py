"""The API reaches Redis through the asyncio twin: the sync memory's round trips are never used."""

import pytest

from empathy_os import AgentCredentials

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sync_path_closed(site_memory, monkeypatch):
    """Make every round trip of the sync memory fail: a handler that hopped to the sync library would 500."""

    def refuse(*args, **kwargs):
        raise AssertionError("the API used the sync memory")

    monkeypatch.setattr(site_memory, "run", refuse)
    monkeypatch.setattr(site_memory, "read", refuse)
    return site_memory


def test_it_serves_the_agent_flow_without_the_sync_memory(api, agents, sync_path_closed):
    worker = agents["contributor"]
    assert api.post("/agents/register", {"capabilities": ["review"]}, token=worker).status_code == 200
    assert api.post("/tasks", [{"task_id": "t-1", "task_type": "review"}], token=worker).status_code == 201
    task = api.post("/tasks/claim", token=worker).json()
    assert task["task_id"] == "t-1"
    done = api.post("/tasks/t-1/complete", {"result": {"ok": 1}, "lease_token": task["lease_token"]}, token=worker)
    assert done.status_code == 200
    assert api.get("/results", token=worker).json()["total_completed"] == 1
    assert api.get("/tasks/t-1", token=worker).json()["status"] == "completed"
    assert api.post("/signals", {"signal_type": "ping", "data": {}, "target_agent": worker.agent_id},
                    token=worker).status_code == 201
    assert [s["signal_type"] for s in api.get("/signals?wait=2", token=worker).json()] == ["ping"]
    assert api.put("/memory/k", {"value": 1}, token=worker).status_code == 200
    assert api.get("/memory/k", token=worker).json()["value"] == 1
    assert api.post("/sessions", {"session_id": "s1", "purpose": "x"}, token=worker).status_code == 201
    assert api.post("/sessions/s1/join", token=worker).json()["participants"] == [worker.agent_id]
    assert api.put("/state/s1", {"state": {"a": 1}}, token=worker).status_code == 200
    assert api.get("/state/s1", token=worker).json()["state"] == {"a": 1}


def test_it_times_out_a_long_poll_with_an_empty_list(api, agents, sync_path_closed):
    response = api.get("/signals?wait=0.2", token=agents["contributor"])
    assert response.status_code == 200 and response.json() == []


def test_it_caches_a_verified_token_and_a_revocation_wins_at_once(api, site_memory, make_token):
    from coordination.models import hash_token
    from coordination.tokens import revoke_tokens

    agent = make_token("contributor", "leaving")
    digest = hash_token(agent.token)
    assert site_memory.cached_credentials(digest) is None
    assert api.get("/agents", token=agent).status_code == 200
    cached = site_memory.cached_credentials(digest)
    assert (cached.agent_id, cached.team_id, cached.tier) == (agent.agent_id, agent.team_id, agent.tier)
    assert revoke_tokens("leaving") == 1
    assert site_memory.cached_credentials(digest) is None
    assert api.get("/agents", token=agent).status_code == 401
    assert api.get("/agents", token=agent).status_code == 401  # a tombstone: the refusal is not cached away


def test_it_does_not_cache_a_token_revoked_while_its_request_read_the_database(site_memory, make_token):
    from coordination.models import hash_token
    from coordination.tokens import TOKEN_CACHE_SECONDS

    agent = make_token("contributor")
    digest = hash_token(agent.token)
    site_memory.revoke_cached_credentials([digest], TOKEN_CACHE_SECONDS)  # revoked after the read
    creds = AgentCredentials(agent.agent_id, agent.tier, agent.team_id)
    assert site_memory.cache_credentials(digest, creds, TOKEN_CACHE_SECONDS) is False
    assert site_memory.cached_credentials(digest) is None

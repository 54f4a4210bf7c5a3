"""The home page (the team list) says which memory the site runs on."""

import pytest

from empathy_os import AgentCoordinator
from tests.support import tier_user


@pytest.fixture
def observer(client, db):
    client.force_login(tier_user("otto", "observer"))
    return client


def test_it_shows_the_memory_mode_and_the_keys(observer, site_memory):
    AgentCoordinator(site_memory, "t1").register_agent("a", ["x"])
    response = observer.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="memory-mode">{site_memory.mode}</strong>' in html
    assert f"{site_memory.get_stats()['keys']} keys" in html
    assert '<span id="memory-status" hx-swap-oob="true" class="badge badge-online">live</span>' in html


def test_it_keeps_the_team_list_live_over_a_websocket(observer, site_memory):
    AgentCoordinator(site_memory, "t1").register_agent("a", ["x"])
    html = observer.get("/").content.decode()
    assert 'hx-ext="ws" ws-connect="/ws/teams/"' in html
    assert '<div id="team-list" hx-swap-oob="true">' in html  # the partial TeamListConsumer sends
    assert '<a id="team-t1" href="/teams/t1/">t1</a>' in html


def test_it_says_mock_memory_is_lost_at_exit(observer, site_memory):
    html = observer.get("/").content.decode()
    assert ("data is lost when the server stops" in html) == (site_memory.mode == "mock")


def test_it_asks_anonymous_users_to_log_in(client, site_memory):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_refuses_other_methods(observer, site_memory):
    assert observer.post("/").status_code == 405

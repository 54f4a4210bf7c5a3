"""The status page says which memory the site runs on."""

import pytest

from coordination import memory as site_memory
from empathy_os import AgentCoordinator


@pytest.fixture
def site_on(memory):
    previous = site_memory._memory
    site_memory.set_memory(memory)
    yield memory
    site_memory.set_memory(previous)


def test_it_shows_the_memory_mode_and_counts(client, site_on):
    AgentCoordinator(site_on, "t1").register_agent("a", ["x"])
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="memory-mode">{site_on.mode}</strong>' in html
    assert "<tr><th>Agents</th><td>1</td></tr>" in html


def test_it_refuses_other_methods(client, site_on):
    assert client.post("/").status_code in (403, 405)

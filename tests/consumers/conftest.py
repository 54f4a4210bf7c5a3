"""What the consumer tests share: the site on the test's memory, logged-in cookies, a WebSocket.

The consumers run inside the real ASGI application (origin check, session auth, routing); the tests
drive the relay themselves (no embedded relay).
"""

from __future__ import annotations

import re

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from coordination.memory import memory_in_use
from coordination.relay import Relay
from empathy_os import AgentCoordinator, AgentTask
from empathy_os.events import EventReader
from empathy_site.asgi import application
from tests.support import logged_in, tier_user

#: Cookie names for the ``cookies`` fixture: one person per tier, and ``nobody`` in no tier group.
PEOPLE = {"observer": "Observer", "contributor": "Contributor", "validator": "Validator", "steward": "Steward",
          "nobody": None}


@pytest.fixture
def site_memory(memory, settings):
    """The ``memory`` fixture as the site's memory; no embedded relay (the tests drive one)."""
    settings.EMPATHY_EMBEDDED_RELAY = False
    with memory_in_use(memory):
        yield memory


#: The team of ``review_team``.
TEAM = "review_team"
#: The ids of the partials of a team dashboard's snapshot, in order (the memory badge comes last).
DASHBOARD_PARTS = ("agents", "tasks-pending", "tasks-in_progress", "tasks-completed", "tasks-failed", "signal-feed",
                   "sessions", "counters")


@pytest.fixture
def team():
    """What the test's modules write before the relay starts (they override it): none here."""
    return None


@pytest.fixture
def review_team(site_memory):
    """``TEAM`` with agent ``alpha`` and one pending task, ``t1`` (modules that watch a team return it
    as their ``team``)."""
    coordinator = AgentCoordinator(site_memory, TEAM)
    coordinator.register_agent("alpha", ["review"])
    coordinator.add_task(AgentTask("t1", "review", "check the diff"))
    return coordinator


@pytest.fixture
async def relay(site_memory, team):
    """A relay that has joined the events streams written so far (``site_memory``, ``team``): it
    relays what happens from now on, one batch per ``process_one``."""
    layer = get_channel_layer()
    relay = Relay(site_memory, layer, EventReader(site_memory, teams_refresh_s=0))
    await relay.process_one(block_ms=1)
    yield relay
    await layer.flush()


def session_cookie(username: str, group: str | None) -> tuple[bytes, bytes]:
    """A ``cookie`` header of a logged-in session of a new user in ``group`` (None: no group)."""
    client = logged_in(tier_user(username, group.lower() if group else None))
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def cookies(db):
    """A logged-in session cookie header per name of PEOPLE."""
    return {name: session_cookie(f"{name}-person", group) for name, group in PEOPLE.items()}


async def connect(path: str, cookie=None, origin=b"http://localhost"):
    """Open a WebSocket to ``path``: ``(communicator, connected, close code)``."""
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie is not None:
        headers.append(cookie)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        await communicator.disconnect()  # the browser goes: the refused consumer ends
    return communicator, connected, code


def ids_of(html: str) -> list[str]:
    """The ids of the top-level elements of a message (each one swapped out of band)."""
    return re.findall(r'^<\w+ [^>]*?\bid="([^"]+)"[^>]*hx-swap-oob="true"', html, re.M)

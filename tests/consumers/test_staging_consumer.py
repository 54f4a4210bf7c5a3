"""The live review queue over WebSocket: who may connect, the snapshot, and the re-rendered list.

Patterns are staged, locked and decided through the library; the relay is driven one batch at a
time (``Relay.process_one``) on the in-memory channel layer; the consumer runs inside the real ASGI
application (origin check, session auth, routing).
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from coordination.live import CLOSE_FORBIDDEN, Coalescer
from empathy_os import AccessTier, AgentCredentials, StagedPattern, lock_pattern
from patterns import library
from patterns.consumers import StagingConsumer

from .conftest import connect as open_socket
from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/patterns/staging/"
AGENT = AgentCredentials("perf", AccessTier.CONTRIBUTOR, "t1")
PEOPLE = {"observer": "Observer", "contributor": "Contributor", "validator": "Validator", "val2": "Validator",
          "steward": "Steward", "nobody": None}


@pytest.fixture
def site_memory(site_memory):
    """The site's memory with one staged pattern."""
    stage(site_memory, "p0", name="First pattern")
    return site_memory


@pytest.fixture
def cookies(db):
    """A logged-in session cookie header per person (``nobody`` is in no tier group)."""
    return {name: session_cookie(name, group) for name, group in PEOPLE.items()}


def stage(memory, pattern_id, **fields):
    values = dict(pattern_type="optimization", name="Eager loading", description="Use select_related",
                  confidence=0.9, code=f"{pattern_id}()")
    values.update(fields)
    memory.stage_pattern(AGENT, StagedPattern(pattern_id, "perf", **values))


async def connect(cookie=None, origin=b"http://localhost"):
    return await open_socket(PATH, cookie, origin)


async def receive_list(communicator) -> str:
    """The next message that re-renders ``#staged-list``."""
    while True:
        html = await communicator.receive_from(timeout=5)
        if 'id="staged-list"' in html:
            return html


async def test_it_sends_the_staged_list_on_connect(site_memory, cookies):
    communicator, connected, _ = await connect(cookies["validator"])
    assert connected
    html = await receive_list(communicator)
    assert html.startswith('<div id="staged-list" hx-swap-oob="true"')
    assert '<article id="pattern-t1--p0"' in html and "First pattern" in html and "90%" in html
    await communicator.disconnect()


async def test_it_sends_a_newly_staged_pattern_as_a_partial(site_memory, cookies, relay):
    communicator, connected, _ = await connect(cookies["steward"])
    assert connected
    await receive_list(communicator)
    await database_sync_to_async(stage)(site_memory, "p1", name="Brand new <b>pattern</b>")
    assert await relay.process_one() == 1
    html = await receive_list(communicator)
    assert html.index('id="pattern-t1--p1"') < html.index('id="pattern-t1--p0"')  # newest first
    assert "Brand new &lt;b&gt;pattern&lt;/b&gt;" in html and "<b>pattern" not in html
    await communicator.disconnect()


async def test_it_takes_a_decided_pattern_out_of_the_list(site_memory, cookies, relay):
    communicator, _, _ = await connect(cookies["validator"])
    await receive_list(communicator)
    validator = AgentCredentials("human-val2", AccessTier.VALIDATOR, "t1")
    await database_sync_to_async(library.promote)(site_memory, validator, "p0")
    await relay.process_one()
    html = await receive_list(communicator)
    assert "pattern-t1--p0" not in html and "No patterns are waiting for review." in html
    await communicator.disconnect()


async def test_it_renders_the_lock_badge_for_each_recipient(site_memory, cookies, relay):
    holder, _, _ = await connect(cookies["validator"])
    other, _, _ = await connect(cookies["val2"])
    await receive_list(holder)
    await receive_list(other)
    await database_sync_to_async(lock_pattern)(site_memory, AgentCredentials("human-validator", AccessTier.VALIDATOR, "t1"), "p0")
    assert await relay.process_one() == 1
    mine, theirs = await receive_list(holder), await receive_list(other)
    assert ">being reviewed by you</span>" in mine and 'class="pattern"' in mine
    assert ">being reviewed by validator</span>" in theirs and 'class="pattern locked"' in theirs
    await holder.disconnect()
    await other.disconnect()


async def test_it_renders_a_burst_of_pattern_events_once(site_memory, cookies, relay, monkeypatch):
    """Throttled: the first event renders at once, the other 19 wait for the interval (an hour here)."""
    monkeypatch.setattr(StagingConsumer, "refresh_seconds", 3600)
    communicator, _, _ = await connect(cookies["validator"])
    await receive_list(communicator)

    for i in range(20):
        await database_sync_to_async(stage)(site_memory, f"burst{i}")
    assert await relay.process_one() == 20
    html = await receive_list(communicator)
    assert html.count('<article id="pattern-t1--') == 21  # all staged before the render
    assert await communicator.receive_nothing(timeout=0.5)  # 20 events, 1 render
    await communicator.disconnect()


async def test_it_ignores_events_that_are_not_about_patterns():
    consumer = StagingConsumer()
    flushed = []
    consumer.coalescer = Coalescer(lambda parts: flushed.append(parts), consumer.refresh_seconds)
    assert await consumer.on_event({"type": "task.added", "team": "t1", "task": "x"}) == []
    assert consumer.coalescer.pending == set() and consumer.coalescer.renders == 0 and flushed == []


@pytest.mark.parametrize("person", ["observer", "contributor", "nobody"])
async def test_it_refuses_people_below_validator(site_memory, cookies, person):
    _, connected, code = await connect(cookies[person])
    assert not connected and code == CLOSE_FORBIDDEN


async def test_it_refuses_anonymous_visitors(site_memory):
    _, connected, code = await connect()
    assert not connected and code == CLOSE_FORBIDDEN


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null"])
async def test_it_refuses_foreign_origins(site_memory, cookies, origin):
    _, connected, _ = await connect(cookies["validator"], origin=origin)
    assert not connected

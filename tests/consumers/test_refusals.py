"""Who the live pages' WebSockets refuse, on every observer-tier page: anonymous visitors and users
without a tier (closed with 4403), and other origins. (The review queue, validators only, has its
own refusals in test_staging_consumer.py.)"""

from __future__ import annotations

import pytest

from coordination.live import CLOSE_FORBIDDEN

from .conftest import connect

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["/ws/teams/review_team/", "/ws/teams/", "/ws/metrics/"]


@pytest.mark.parametrize("path", PAGES)
async def test_it_refuses_anonymous_users(site_memory, path):
    _, connected, code = await connect(path)
    assert not connected and code == CLOSE_FORBIDDEN


@pytest.mark.parametrize("path", PAGES)
async def test_it_refuses_a_user_without_a_tier(site_memory, cookies, path):
    _, connected, code = await connect(path, cookies["nobody"])
    assert not connected and code == CLOSE_FORBIDDEN


@pytest.mark.parametrize("path", PAGES)
async def test_it_refuses_a_foreign_origin(site_memory, cookies, path):
    _, connected, _ = await connect(path, cookies["steward"], origin=b"http://evil.example")
    assert not connected

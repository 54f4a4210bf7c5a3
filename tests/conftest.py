"""Fixtures shared by every test: a private redis-server and the ``memory`` fixture over both backends."""

from __future__ import annotations

import os

# The site under test never looks for the machine's Redis (port 6379): tests give it their own memory.
os.environ.setdefault("EMPATHY_REDIS_MOCK", "1")

import fakeredis  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402

from empathy_os import RedisShortTermMemory  # noqa: E402
from tests.support import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """URL of the session's private redis-server, flushed before the test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


def make_memory(backend: str, request, **kwargs) -> RedisShortTermMemory:
    if backend == "mock":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return RedisShortTermMemory(client=client, **kwargs)
    url = request.getfixturevalue("redis_url")
    memory = RedisShortTermMemory(url, **kwargs)
    request.addfinalizer(memory.client.close)
    return memory


@pytest.fixture(params=["mock", "redis"])
def backend(request):
    """The name of the backend under test: fakeredis ("mock") or the private redis-server ("redis")."""
    return request.param


@pytest.fixture
def memory(backend, request):
    """A fresh, empty memory on each backend."""
    return make_memory(backend, request)


@pytest.fixture
def memory_factory(backend, request):
    """Build a memory on the current backend with custom settings (e.g. a short lease)."""
    created = {}

    def factory(**kwargs):
        if backend == "mock":
            server = created.setdefault("server", fakeredis.FakeServer())
            return RedisShortTermMemory(client=fakeredis.FakeRedis(server=server, decode_responses=True), **kwargs)
        return make_memory(backend, request, **kwargs)

    return factory

"""Fixtures shared by every test: a private redis-server, a private Redis Cluster, a private
PostgreSQL, and the ``memory`` fixture over the three backends (mock, redis, cluster).

The site runs in mock mode (``tests/settings.py``): nothing here uses the machine's Redis (port 6379)
or its PostgreSQL (port 5432).

Two databases: a run is on SQLite, or (``EMPATHY_TEST_DATABASE=postgresql``, the second pass of
``./setup.sh test``) on the session's private PostgreSQL; that run takes only the tests that use the
database, each once (on the mock backend: the Redis side is the first run's business)."""

from __future__ import annotations

import os

import fakeredis
import pytest

from empathy_os import RedisShortTermMemory
from tests.support import PostgresServer, RedisClusterServer, RedisServer, ThreadedSite

POSTGRES = os.environ.get("EMPATHY_TEST_DATABASE", "").strip().lower() == "postgresql"
#: Fixtures that give a test the database (besides the ``django_db`` mark).
DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


@pytest.fixture(scope="session")
def postgres_server():
    """The session's private PostgreSQL (``tests.support.PostgresServer``), started on first use."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix):
    """pytest-django's hook before it creates the test database: on the PostgreSQL run, point the
    database settings at the session's private server (its socket directory and port). Django's
    connections hold this very dict, so they follow."""
    from django.conf import settings

    if settings.EMPATHY_TEST_DATABASE == "postgresql":
        server = request.getfixturevalue("postgres_server")
        settings.DATABASES["default"].update(HOST=server.host, PORT=str(server.port))


def uses_database(item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(DB_FIXTURES & set(item.fixturenames))


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """URL of the session's private redis-server, flushed before the test."""
    return redis_server.flush()


@pytest.fixture(scope="session")
def redis_cluster():
    """A local Redis Cluster of 3 masters (free ports), started on first use and kept for the session."""
    cluster = RedisClusterServer(masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster):
    """``redis+cluster://`` URL of the session's Redis Cluster, flushed (every master) before the test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def private_redis():
    """A redis-server of the test's own (free port), for a test that kills or restarts it; stopped after."""
    server = RedisServer()
    yield server
    server.stop()


def make_memory(backend: str, request, **kwargs) -> RedisShortTermMemory:
    if backend == "mock":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return RedisShortTermMemory(client=client, **kwargs)
    url = request.getfixturevalue("cluster_url" if backend == "cluster" else "redis_url")
    memory = RedisShortTermMemory(url, **kwargs)
    request.addfinalizer(memory.client.close)
    return memory


BACKENDS = ("mock", "redis", "cluster")
#: Where the "cluster" backend runs too: the library's behavioural tests. Elsewhere (the site, the
#: examples, the bench) ``backend`` is mock and redis: those tests start processes of their own on a
#: Redis URL and check what they print, which the cluster run of the library does not change.
CLUSTER_TESTS = ("tests/integration/",)


@pytest.fixture
def backend(request):
    """The name of the backend under test: fakeredis ("mock"), the private redis-server ("redis") or
    the private Redis Cluster of 3 masters ("cluster"; tests in CLUSTER_TESTS only)."""
    return request.param


def pytest_generate_tests(metafunc):
    """Run every test that uses ``backend`` (or ``memory``, ``memory_factory``) once per backend."""
    if "backend" in metafunc.fixturenames:
        cluster = metafunc.definition.nodeid.startswith(CLUSTER_TESTS)
        backends = BACKENDS[:1] if POSTGRES else BACKENDS if cluster else BACKENDS[:2]
        metafunc.parametrize("backend", backends, indirect=True)


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


@pytest.fixture
def probe(site_memory, monkeypatch):
    """A fresh metrics probe of the test's site memory, the one the metrics page and ``/metrics`` show
    (``site_memory`` comes from the test's directory)."""
    from coordination import metrics_probe

    fresh = metrics_probe.Probe(memory_getter=lambda: site_memory)
    monkeypatch.setattr(metrics_probe, "PROBE", fresh)
    return fresh


def pytest_collection_modifyitems(config, items):
    """Browser tests run last. Their session-wide fixtures stay up until the session ends: Playwright's
    sync API keeps an event loop running in the main thread (async tests cannot run beside it), and the
    site server's relay reads the private redis-server's event streams as group "relay".

    The PostgreSQL run keeps only the tests that use the database."""
    if POSTGRES:
        kept = [item for item in items if uses_database(item)]
        config.hook.pytest_deselected(items=[item for item in items if not uses_database(item)])
        items[:] = kept
    items.sort(key=lambda item: item.nodeid.startswith("tests/browser/"))


@pytest.fixture(scope="session")
def threaded_site():
    """The site served by uvicorn in a thread of this process (``tests.support.ThreadedSite``)."""
    site = ThreadedSite()
    yield site
    site.stop()


@pytest.fixture
def live_site(threaded_site, memory, transactional_db):
    """The running site (``.url``) serving this test's ``memory`` (mock or redis) and database."""
    from coordination.memory import memory_in_use

    with memory_in_use(memory):
        yield threaded_site

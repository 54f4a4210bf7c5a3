"""Fixtures of the reliability tests: a redis-server run from the shipped config (``production_redis``),
and a ``forkserver`` context whose server has the worker module imported (replacing a killed worker is
fast). A plain redis-server of a test's own is ``private_redis`` (tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.support import RedisServer, redis_server_binary

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "redis.conf"


class ConfiguredRedisServer(RedisServer):
    """A private redis-server run from a copy of a config file (``deploy/redis.conf``) in which only the
    location lines (``dir``, ``port``, ``bind``) are replaced, so the test runs the shipped settings.
    :meth:`kill` then :meth:`start` reuses the same directory, as a restarted production server would."""

    LOCATION = ("dir", "port", "bind")

    def __init__(self, conf: Path = DEPLOY_CONF):
        self.conf = conf
        super().__init__()

    def command(self) -> list[str]:
        kept = [line for line in self.conf.read_text().splitlines() if line.split(" ", 1)[0] not in self.LOCATION]
        copy = Path(self.dir) / "redis.conf"
        copy.write_text("\n".join(kept + [f"dir {self.dir}", f"port {self.port}", "bind 127.0.0.1", ""]))
        return [redis_server_binary(), str(copy)]


@pytest.fixture
def production_redis():
    """A redis-server run from deploy/redis.conf (appendonly yes, appendfsync always, no snapshots)."""
    server = ConfiguredRedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker_context():
    """``forkserver``: workers start in milliseconds from a server that already imported them (``spawn``
    would re-import everything for each replacement; ``fork`` would copy the test process's threads)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.reliability.workers"])
    return ctx

"""Finding the memory: REDIS_URL, localhost, mock; clear errors; one exception type when Redis is down."""

import logging
import subprocess
import sys
import time

import pytest

from empathy_os import (
    AgentCoordinator,
    MemoryUnavailableError,
    RedisShortTermMemory,
    check_redis_connection,
    get_redis_memory,
    redis_memory,
)
from tests.support import RedisServer, free_port

from .helpers import creds


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("EMPATHY_REDIS_MOCK", raising=False)
    monkeypatch.delenv("REDIS_CLUSTER", raising=False)
    return monkeypatch


def test_it_uses_redis_url(clean_env, redis_url, caplog):
    clean_env.setenv("REDIS_URL", redis_url)
    with caplog.at_level(logging.INFO, logger="empathy_os"):
        memory = get_redis_memory()
    assert memory.mode == "redis"
    assert check_redis_connection() is True
    assert check_redis_connection(memory) is True
    assert memory.get_stats()["mode"] == "redis"
    assert [r.getMessage() for r in caplog.records] == [f"empathy_os: redis mode at {redis_url}"]


def test_it_refuses_to_fall_back_when_redis_url_does_not_answer(clean_env):
    clean_env.setenv("REDIS_URL", f"redis://:secret@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(MemoryUnavailableError, match="does not answer") as info:
        get_redis_memory()
    assert "secret" not in str(info.value)
    assert time.monotonic() - started < 5
    assert check_redis_connection() is False


def test_it_falls_back_to_mock_quickly_when_localhost_is_silent(clean_env, caplog):
    clean_env.setattr(redis_memory, "LOCAL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="empathy_os"):
        memory = get_redis_memory()
    assert time.monotonic() - started < 1
    assert memory.mode == "mock"
    assert "mock mode" in caplog.records[-1].getMessage()
    assert check_redis_connection() is False
    assert check_redis_connection(memory) is False


def test_it_uses_localhost_when_it_answers(clean_env, redis_url):
    clean_env.setattr(redis_memory, "LOCAL_REDIS_URL", redis_url)
    assert get_redis_memory().mode == "redis"


def test_it_forces_mock_mode(clean_env, redis_url):
    clean_env.setenv("REDIS_URL", redis_url)
    clean_env.setenv("EMPATHY_REDIS_MOCK", "1")
    memory = get_redis_memory()
    assert memory.mode == "mock"
    assert check_redis_connection() is False


def test_it_shares_one_mock_per_process():
    a = RedisShortTermMemory(use_mock=True)
    b = RedisShortTermMemory(use_mock=True)
    a.stash(creds("x", team="shared_mock"), "k", 42)
    assert b.retrieve(creds("y", team="shared_mock"), "k", agent_id="x") == 42


def test_it_raises_one_clear_exception_when_redis_goes_away():
    server = RedisServer()
    try:
        memory = RedisShortTermMemory(server.url)
        coordinator = AgentCoordinator(memory, "t1")
        coordinator.register_agent("a", ["x"])
        server.kill()
        operations = [
            lambda: memory.stash(creds("a"), "k", 1),
            lambda: memory.retrieve(creds("a"), "k"),
            lambda: coordinator.claim_task("a"),
            lambda: coordinator.aggregate_results(),
            lambda: memory.receive_signals(creds("a")),
            lambda: memory.get_stats(),
        ]
        for op in operations:
            with pytest.raises(MemoryUnavailableError, match="did not answer"):
                op()
        assert memory.ping() is False
        server.start()  # same port: the client reconnects by itself
        memory.stash(creds("a"), "k", 2)
        assert memory.retrieve(creds("a"), "k") == 2
    finally:
        server.stop()


def test_it_imports_no_django():
    code = "import sys, empathy_os, empathy_os.bench; print(sorted(m for m in sys.modules if m.startswith('django')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

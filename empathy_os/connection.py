"""Connections: a redis-py client from a URL (plain, TLS, unix socket, Redis Cluster), the one in-process
mock server of mock mode, and which errors mean "Redis is not there" (:data:`UNAVAILABLE`)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from .exceptions import InvalidInputError, MemoryUnavailableError

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_mock_server = None

def _shared_mock_server():
    """One in-memory server per process, so every mock-mode memory of the process sees the same data."""
    global _mock_server
    if _mock_server is None:
        import fakeredis

        _mock_server = fakeredis.FakeServer()
    return _mock_server


def redact_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_cluster_url(url: str) -> bool:
    """``url`` names a Redis Cluster: ``redis+cluster://``, or any URL with ``REDIS_CLUSTER=1``."""
    return url.startswith("redis+cluster://") or os.environ.get("REDIS_CLUSTER") == "1"


def client_from_url(url: str, *, timeout: float = 5.0):
    """A redis-py client for ``url`` (redis://, rediss://, unix://, redis+cluster://)."""
    cluster = is_cluster_url(url)
    if url.startswith("redis+cluster://"):
        url = "redis://" + url[len("redis+cluster://"):]
    kwargs = dict(decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if cluster:
            return _cluster_client(url, **kwargs)
        return redis.Redis.from_url(url, health_check_interval=30, **kwargs)
    except UNAVAILABLE + (RedisClusterException,) as exc:  # a cluster client connects when it is made
        raise MemoryUnavailableError(f"Redis Cluster at {redact_url(url)} did not answer: {exc}") from None
    except ValueError as exc:
        raise InvalidInputError(f"bad Redis URL {redact_url(url)}: {exc}") from None


def _cluster_client(url: str, **kwargs):
    """A ``RedisCluster`` for a redis:// or rediss:// URL of any one node (the others are discovered).

    Built from the URL's parts rather than with ``RedisCluster.from_url``: the nodes of a client made
    from a URL get connection pools that ``close()`` leaves open (redis-py 8), so each closed memory
    would leave a socket per master behind."""
    from redis.cluster import RedisCluster
    from redis.connection import SSLConnection, parse_url

    options = parse_url(url)
    if "path" in options:
        raise ValueError("a Redis Cluster is reached over TCP, not a unix socket")
    if options.pop("db", 0) != 0:
        raise ValueError("a Redis Cluster has database 0 only")
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return RedisCluster(**options, **kwargs)

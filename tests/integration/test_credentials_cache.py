"""Cached token credentials: cached, read by both faces of the memory, and forgotten everywhere on
revocation (the Redis tombstone, and each process's local copy through the revocations channel)."""

import asyncio
import time

from empathy_os import AccessTier, AgentCredentials

DIGEST = "ab" * 32
CREDS = AgentCredentials("a1", AccessTier.CONTRIBUTOR, "t1")


async def test_a_revoked_token_is_forgotten_by_redis_and_by_the_processs_copy_at_once(memory):
    assert memory.cache_credentials(DIGEST, CREDS, 60)
    assert memory.cached_credentials(DIGEST) == CREDS
    aio = memory.aio
    for _ in range(200):  # until the revocations listener is subscribed (mock and redis; none in cluster)
        local = aio._local()
        if local is None or local.listening:
            break
        await asyncio.sleep(0.01)
    assert await aio.cached_credentials(DIGEST) == CREDS
    if local is not None:
        assert local.get(DIGEST) == CREDS  # kept in the process: the next lookup costs no round trip
    memory.revoke_cached_credentials([DIGEST], 60)
    started = time.monotonic()
    while await aio.cached_credentials(DIGEST) is not None and time.monotonic() - started < 3:
        await asyncio.sleep(0.01)
    assert await aio.cached_credentials(DIGEST) is None
    assert time.monotonic() - started < 1.0  # the announcement, not the copy's 5 s lifetime
    assert memory.cached_credentials(DIGEST) is None
    assert memory.cache_credentials(DIGEST, CREDS, 60) is False  # the tombstone keeps it out

"""Token credentials kept in the process, dropped the moment a revocation is announced.

The site caches a verified token's credentials in Redis (``cached_credentials``), so a request needs
no database query; this saves it the Redis round trip too. An asyncio memory keeps, per event loop,
the credentials it read lately for at most ``LOCAL_SECONDS``, and only while it is subscribed to the
revocations channel (``keys.token_revocations_channel``): ``revoke_cached_credentials`` writes its
tombstones, then publishes the hashes, and every subscribed process forgets them on receipt.

What keeps this as strict as the Redis cache alone:
- no subscription, no local copy: until the subscription is confirmed, and from the moment it fails
  (Redis restarted, connection lost: messages may have been missed), every entry is dropped and every
  lookup goes to Redis; the listener subscribes again after ``RETRY_SECONDS``;
- a lookup that started before a revocation arrived cannot store its (older) answer: each message
  bumps a generation, and :meth:`LocalCredentials.put` stores only under the generation its lookup
  started in;
- an entry lives ``LOCAL_SECONDS`` at most, so even a revocation whose announcement was lost (Redis
  went away between the tombstone and the publish) takes effect within that time.
Not in cluster mode: there every lookup goes to Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .keys import token_revocations_channel

log = logging.getLogger("empathy_os.local_credentials")

#: How long a credentials entry is kept in the process (seconds).
LOCAL_SECONDS = 5.0
#: Seconds between attempts to subscribe again after the subscription failed.
RETRY_SECONDS = 1.0
#: The longest wait for one message (under the 5 s socket timeout); then the listener waits again.
WAIT_SECONDS = 2.0
#: Entries kept at most; past it the oldest half goes (a bound, not an LRU).
MAX_ENTRIES = 10_000


class LocalCredentials:
    """The local credentials of one event loop of an asyncio memory (see the module's text)."""

    def __init__(self, memory):
        self.memory = memory
        self.entries: dict[str, tuple] = {}  # token hash -> (credentials, monotonic expiry)
        self.generation = 0
        self.listening = False
        self.task = asyncio.get_running_loop().create_task(self._listen(), name="empathy-token-revocations")

    def get(self, token_hash: str):
        """The credentials kept for ``token_hash``, or None."""
        entry = self.entries.get(token_hash)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            self.entries.pop(token_hash, None)
            return None
        return entry[0]

    def put(self, token_hash: str, credentials, generation: int) -> None:
        """Keep ``credentials``, read by a lookup that started in ``generation``."""
        if not self.listening or generation != self.generation:
            return
        if len(self.entries) >= MAX_ENTRIES:
            for stale in list(self.entries)[: MAX_ENTRIES // 2]:
                del self.entries[stale]
        self.entries[token_hash] = (credentials, time.monotonic() + LOCAL_SECONDS)

    def _forget(self, token_hashes=None) -> None:
        self.generation += 1
        if token_hashes is None:
            self.entries.clear()
        else:
            for token_hash in token_hashes:
                self.entries.pop(token_hash, None)

    async def _listen(self) -> None:
        channel = token_revocations_channel(self.memory.config.key_prefix)
        while True:
            pubsub = None
            try:
                pubsub = (await self.memory.client()).pubsub()
                await pubsub.subscribe(channel)
                while True:
                    # below the clients' socket timeout: an idle channel is not a failure
                    message = await pubsub.get_message(timeout=WAIT_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._forget()
                        self.listening = True
                    elif message["type"] == "message":
                        self._forget(message["data"].split())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means messages may be lost
                log.info("token revocations: subscription lost (%s); looking tokens up in Redis meanwhile", exc)
            finally:
                self.listening = False
                self._forget()
                if pubsub is not None:
                    await _close(pubsub)
            await asyncio.sleep(RETRY_SECONDS)


async def _close(pubsub) -> None:
    try:
        await asyncio.shield(pubsub.aclose())
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing a broken connection
        pass

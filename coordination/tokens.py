"""Agent tokens: who an HTTP caller is, decided on the server.

Guessing tokens is rate-limited per client address: after ``EMPATHY_AUTH_FAILURE_LIMIT`` bad tokens
within ``EMPATHY_AUTH_FAILURE_WINDOW`` seconds, every request of that address is refused (429) until
the window ends, good token or not (else a lucky guess would still get in). Behind a proxy, run
daphne with ``--proxy-headers`` so the address is the client's, not the proxy's. Tokens are never
logged: only their hashes are stored and compared.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.utils import timezone

import logging

from empathy_os import AccessTier, AgentCredentials, MemoryUnavailableError
from empathy_os.ratelimit import FailureLimiter, auth_failure_limiter

from .memory import get_memory
from .models import TOKEN_PREFIX, AgentToken, hash_token

log = logging.getLogger("coordination.tokens")

#: A verified token's credentials are cached in Redis this long, so a request needs no database query
#: (and no thread to run it in). Revocation through :func:`revoke_tokens` takes effect at once.
TOKEN_CACHE_SECONDS = 60


class TooManyFailures(Exception):
    """The client sent too many bad tokens lately; it may try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many bad tokens from this address: try again in {retry_after} s")
        self.retry_after = retry_after


def issue_token(agent_id: str, team_id: str, tier, created_by: str = "") -> tuple[str, AgentToken]:
    """Validate and create a token; returns the clear token (show it once) and its row."""
    creds = AgentCredentials(agent_id, AccessTier.parse(tier), team_id)  # validates ids and tier
    return AgentToken.issue(creds.agent_id, creds.team_id, creds.tier, created_by)


def revoke_tokens(agent_id: str, team_id: str | None = None) -> int:
    """Revoke every live token of an agent (of one team, or all). Returns how many."""
    live = AgentToken.objects.filter(agent_id=agent_id, revoked_at=None)
    if team_id:
        live = live.filter(team_id=team_id)
    hashes = list(live.values_list("token_hash", flat=True))
    count = live.update(revoked_at=timezone.now())
    try:
        get_memory().revoke_cached_credentials(hashes, TOKEN_CACHE_SECONDS)
    except MemoryUnavailableError as exc:  # the database says revoked; a cached copy lasts its TTL at most
        log.warning("revoked %d token(s) of %s, but Redis did not answer (%s): the API may accept them for up "
                    "to %d s more", count, agent_id, exc, TOKEN_CACHE_SECONDS)
    return count


def token_limiter(memory) -> FailureLimiter:
    """The bad-token limiter of ``memory``."""
    return auth_failure_limiter(memory, "token")


async def authenticate(token: str, client: str) -> AgentCredentials | None:
    """The credentials of ``token`` sent from address ``client``, or None; raises :class:`TooManyFailures`
    when that address is over its limit of bad tokens (and ``MemoryUnavailableError`` if Redis is down
    when a bad token must be counted: refusing is safer than letting guesses through uncounted)."""
    limiter = token_limiter(get_memory())
    wait = limiter.retry_after(client)
    if wait:
        raise TooManyFailures(wait)
    credentials = await credentials_for(token)
    if credentials is None:
        wait = await sync_to_async(limiter.record_failure, thread_sensitive=False)(client)
        if wait:
            raise TooManyFailures(wait)
    return credentials


async def credentials_for(token: str) -> AgentCredentials | None:
    """The credentials a live token stands for, or None."""
    digest = token_digest(token)
    if digest is None:
        return None
    memory = get_memory().aio
    try:
        cached = await memory.cached_credentials(digest)
    except MemoryUnavailableError:
        cached = memory = None  # the database alone decides while Redis is away
    if cached is not None:
        return cached
    row = await AgentToken.objects.filter(token_hash=digest, revoked_at=None).afirst()
    if row is None:
        return None
    credentials = AgentCredentials(row.agent_id, row.access_tier, row.team_id)
    if memory is not None:
        try:
            await memory.cache_credentials(digest, credentials, TOKEN_CACHE_SECONDS)
        except MemoryUnavailableError:
            pass
    return credentials


async def cached_credentials_for(token: str, client: str) -> AgentCredentials | None:
    """The credentials of ``token`` from the Redis cache alone (one GET, no database, no thread), or
    None when they are not there, Redis is away, or ``client`` is being refused for bad tokens: then
    :func:`authenticate` must decide."""
    digest = token_digest(token)
    if digest is None or token_limiter(get_memory()).retry_after(client):
        return None
    try:
        return await get_memory().aio.cached_credentials(digest)
    except MemoryUnavailableError:
        return None


def token_digest(token: str) -> str | None:
    """The stored hash of a well-formed token, or None for a string that cannot be one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    return hash_token(token)

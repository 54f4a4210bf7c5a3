"""``empathy_os.client``: the chapter's interface over the site's HTTP API.

::

    from empathy_os import EmpathyOS, AgentCoordinator
    from empathy_os.client import connect

    memory = connect("http://host:8000", token="emp_...")
    agent = EmpathyOS("security_agent", short_term_memory=memory)
    agent.stash("findings", {"warnings": 2})

``connect`` returns a :class:`Client` that ``EmpathyOS``, ``AgentCoordinator`` and ``TeamSession``
accept in place of a ``RedisShortTermMemory``. Every call goes through the site's token-checked API:
who the caller is, its team and its tier are the token's, whatever the code passes locally (a higher
``access_tier`` gets the server's refusal). One pooled keep-alive ``httpx`` client per ``Client``;
503 and refused connections are retried with back-off (``Retry-After`` honoured), 4xx never; errors
come back as the library's exceptions with the server's message.

Several agents in one process (as in the chapter) each use their own token: pass ``tokens=[...]``;
each call picks the token of the agent it is made for (:class:`~._ops.Keyring`).

``get_redis_memory()`` returns a client when ``EMPATHY_URL`` is set (tokens from ``EMPATHY_TOKEN``
and ``EMPATHY_TOKENS``, separated by commas or spaces), so chapter code runs unchanged against a site.
"""

from __future__ import annotations

import os

import httpx

from ._http import CONNECT_TIMEOUT, READ_TIMEOUT, RateLimitedError, Retry, TokenRejectedError, asend, send
from ._ops import OPERATIONS, Identity, Keyring, Operations

USER_AGENT = "empathy-os-client/1"


def _tokens(token, tokens) -> list[str]:
    found = [t for t in ([token] if token else []) + list(tokens or ()) if t]
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ValueError("give an agent token: connect(url, token=...) (manage.py create_agent_token makes one)")
    return unique


def _http_options(url: str, transport) -> dict:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the site's URL must start with http:// or https://, got {url!r}")
    options = dict(base_url=url.rstrip("/"), headers={"User-Agent": USER_AGENT},
                   timeout=httpx.Timeout(CONNECT_TIMEOUT, read=READ_TIMEOUT),
                   limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=30))
    if transport is not None:
        options["transport"] = transport
    return options


def _sync_method(name):
    build = getattr(Operations, name)

    def method(self, *args, **kwargs):
        return send(self._http, self._retry, build(self, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = build.__doc__
    return method


def _async_method(name):
    build = getattr(Operations, name)

    async def method(self, *args, **kwargs):
        return await asend(self._http, self._retry, build(self, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = build.__doc__
    return method


class _Common(Operations):
    """What both clients share: the keyring, the site's mode, how they present themselves."""

    def _learned(self, identities: list[tuple[str, Identity]]) -> None:
        self.keyring = Keyring(identities)
        self.identity = identities[0][1]

    def __repr__(self):
        who = ", ".join(f"{w.agent_id}@{w.team_id}" for _, w in self.keyring.identities)
        return f"<{type(self).__name__} {self.url} as {who}>"


class Client(_Common):
    """A synchronous client of one site. Use it as a memory (see the module docstring), or call its
    operations directly with credentials first (``None``: the first token)."""

    def __init__(self, url: str, token: str | None = None, *, tokens=(), retries: int | None = None,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(**_http_options(url, transport))
        self._retry = Retry() if retries is None else Retry(retries)
        try:
            self._learned([(t, send(self._http, self._retry, Operations.whoami(_One(t)))) for t in _tokens(token, tokens)])
            health = send(self._http, self._retry, Operations.health(self)) or {}
        except BaseException:
            self._http.close()
            raise
        #: The site's memory mode ('redis', 'cluster' or 'mock'), as ``RedisShortTermMemory.mode``.
        self.mode = health.get("memory_mode", "unknown")

    def ping(self) -> bool:
        """True when the site answers and its memory does."""
        try:
            health = self.health()
        except Exception:  # noqa: BLE001 - any failure to answer is "no"
            return False
        return bool(health and (health.get("redis_reachable") or health.get("memory_mode") == "mock"))

    def redis_reachable(self) -> bool:
        """True when the site's memory is a real Redis that answers (``check_redis_connection``)."""
        health = self.health()
        return bool(health and health.get("redis_reachable"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # AgentCoordinator(client, ...) and TeamSession(client, ...) build these instead (see remote.py).
    @property
    def remote_coordinator(self):
        from .remote import RemoteCoordinator

        return RemoteCoordinator

    @property
    def remote_session(self):
        from .remote import RemoteSession

        return RemoteSession


class AsyncClient(_Common):
    """The asyncio twin of :class:`Client`: the same operations, as coroutines. Build it with
    ``await AsyncClient.connect(url, token)`` (it asks the server who each token is)."""

    def __init__(self, url: str, *, retries: int | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(**_http_options(url, transport))
        self._retry = Retry() if retries is None else Retry(retries)
        self.mode = "unknown"

    @classmethod
    async def connect(cls, url: str, token: str | None = None, *, tokens=(), **options) -> "AsyncClient":
        client = cls(url, **options)
        try:
            client._learned([(t, await asend(client._http, client._retry, Operations.whoami(_One(t))))
                             for t in _tokens(token, tokens)])
            health = await asend(client._http, client._retry, Operations.health(client)) or {}
        except BaseException:
            await client.aclose()
            raise
        client.mode = health.get("memory_mode", "unknown")
        return client

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class _One(Operations):
    """Operations with one token, for asking who that token is."""

    def __init__(self, token: str):
        self.keyring = Keyring([(token, None)])


for _name in OPERATIONS:
    setattr(Client, _name, _sync_method(_name))
    setattr(AsyncClient, _name, _async_method(_name))


def connect(url: str, token: str | None = None, *, tokens=(), **options) -> Client:
    """A :class:`Client` of the site at ``url`` acting with ``token`` (and ``tokens``, for more agents)."""
    return Client(url, token, tokens=tokens, **options)


def env_tokens() -> list[str]:
    """The tokens named by ``EMPATHY_TOKEN`` and ``EMPATHY_TOKENS`` (commas or spaces between them)."""
    many = os.environ.get("EMPATHY_TOKENS", "").replace(",", " ").split()
    return [t for t in [os.environ.get("EMPATHY_TOKEN", "").strip(), *many] if t]


def connect_from_env() -> Client:
    """A client of ``EMPATHY_URL`` with the tokens of :func:`env_tokens` (what ``get_redis_memory`` uses)."""
    url = os.environ.get("EMPATHY_URL", "").strip()
    tokens = env_tokens()
    if not tokens:
        raise ValueError("EMPATHY_URL is set but no token is: set EMPATHY_TOKEN (manage.py create_agent_token)")
    return Client(url, tokens=tokens)


def site_answers() -> bool:
    """``check_redis_connection()`` with ``EMPATHY_URL`` set: the site answers and its memory is a real Redis."""
    try:
        with connect_from_env() as client:
            return client.redis_reachable()
    except Exception:  # noqa: BLE001 - any failure to answer is "no"
        return False


__all__ = ["AsyncClient", "Client", "Identity", "RateLimitedError", "TokenRejectedError", "connect",
           "connect_from_env", "env_tokens", "site_answers"]

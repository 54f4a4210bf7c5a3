"""Where the MCP tools reach the agent API, and the site's ``/mcp`` endpoint (streamable HTTP).

``/mcp`` takes an agent's bearer token, checked like the API's (same tokens, same limiter of bad
tokens per address); each tool call is then sent in process to the site's API app with that token,
so it meets the same handlers and rules as any HTTP call. The SDK's session manager runs stateless
(no session affinity: any of several servers behind a load balancer answers any request) and answers
in JSON; daphne has no ASGI lifespan, so the manager is started on the first request of each event
loop and kept running.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.transport_security import TransportSecuritySettings

from empathy_os import MemoryUnavailableError
from empathy_os.client import AsyncClient
from empathy_os.client._ops import Keyring

from .mcp import build_server
from .tokens import TooManyFailures, authenticate

#: Clients kept per (event loop, token, host, address): each is a keyring of one token and an in-process transport.
MAX_CLIENTS = 512


def in_process_client(api_app, token: str, host: str = "localhost", address: tuple[str, int] = ("127.0.0.1", 0)) -> AsyncClient:
    """An ``AsyncClient`` speaking with ``token`` to the API app of this process (no network)."""
    transport = httpx.ASGITransport(app=api_app, client=address)
    client = AsyncClient(f"http://{host}", transport=transport)
    client.keyring = Keyring([(token, None)])
    return client


def local_host() -> str:
    """A host name the site accepts (``ALLOWED_HOSTS``), for requests made in process."""
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"


def _bearer(headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _reply(send, status: int, code: str, detail: str, **headers) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    extra = [(name.replace("_", "-").encode(), str(value).encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class McpEndpoint:
    """The ASGI app of ``/mcp``: host and token checks, then the SDK's streamable-HTTP app."""

    def __init__(self, api_app):
        self.api_app = api_app
        self.server = build_server(self.client_for)
        self._running: dict = {}  # event loop -> (Starlette app, started event, task)
        self._clients: dict = {}

    def client_for(self, ctx) -> AsyncClient:
        request = ctx.request_context.request
        token = _bearer(request.headers)
        host = request.headers.get("host", "localhost")
        address = (request.client.host, request.client.port) if request.client else ("unknown", 0)
        key = (asyncio.get_running_loop(), token, host, address[0])
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._clients.clear()  # their connections are in process: nothing to close
            client = self._clients[key] = in_process_client(self.api_app, token, host, address)
        return client

    async def _app(self):
        loop = asyncio.get_running_loop()
        entry = self._running.get(loop)
        if entry is None:
            app = self.server.streamable_http_app(
                streamable_http_path="/mcp", stateless_http=True, json_response=True,
                # Hosts are checked here against ALLOWED_HOSTS; the bearer token is not ambient, so
                # a rebound page cannot use it.
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
            started = asyncio.Event()

            async def hold():
                async with app.router.lifespan_context(app):
                    started.set()
                    await asyncio.Event().wait()

            entry = self._running[loop] = (app, started, loop.create_task(hold(), name="mcp-session-manager"))
        await entry[1].wait()
        return entry[0]

    async def aclose(self) -> None:
        """Stop the session manager of the running loop (tests; servers just exit)."""
        entry = self._running.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            entry[2].cancel()
            await asyncio.gather(entry[2], return_exceptions=True)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        domain, _ = split_domain_port(headers.get("host", ""))
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return await _reply(send, 400, "bad_host", "this host is not served here (ALLOWED_HOSTS)")
        token = _bearer(headers)
        client = scope.get("client") or ("unknown", 0)
        try:
            credentials = await authenticate(token, client[0]) if token else None
        except TooManyFailures as exc:
            return await _reply(send, 429, "too_many_requests", str(exc), Retry_After=exc.retry_after)
        except MemoryUnavailableError as exc:
            return await _reply(send, 503, "memory_unavailable", str(exc), Retry_After=1)
        if credentials is None:
            return await _reply(send, 401, "unauthorized", "send a valid agent token: 'Authorization: Bearer <token>'",
                                WWW_Authenticate="Bearer")
        await (await self._app())(scope, receive, send)

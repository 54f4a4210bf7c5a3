"""The HTTP side of the client: a request description (``Call``), errors mapped back to the library's
exceptions, and one retry policy shared by the sync and async senders.

A ``Call`` is built once (sans-IO) and sent by either sender, so the sync ``Client`` and the
``AsyncClient`` cannot drift: they differ only in how bytes travel.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from ..exceptions import HTTP_ANSWERS, AccessDeniedError, EmpathyError, MemoryUnavailableError

API_PREFIX = "/api/v1"
#: Connect, write and pool timeouts (s); reads wait ``READ_TIMEOUT`` plus any long-poll ``wait``.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Retries of a 503 (memory unavailable) or of a connection that could not be made, then give up.
MAX_RETRIES = 4
#: First back-off (s), doubled on each retry, never less than the server's ``Retry-After``, at most ``MAX_BACKOFF``.
BACKOFF = 0.2
MAX_BACKOFF = 5.0


class TokenRejectedError(AccessDeniedError):
    """The server does not know the token (wrong, revoked, or for another site)."""


class RateLimitedError(EmpathyError):
    """The server refused for now (429); try again in ``retry_after`` seconds. Never retried for you:
    it answers bad tokens from this address."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


#: The API's error codes (``{"error": code}``, and a batch's per-item ``error``) -> exception.
CODES = {code: exc for exc, _, code in HTTP_ANSWERS}
#: An answer whose code is not listed: the most general class of its status (the table's last row of it).
BY_STATUS = {status: exc for exc, status, _ in HTTP_ANSWERS} | {401: TokenRejectedError}


def raise_for(response: httpx.Response) -> None:
    """Raise the library's exception for an error response, with the server's message."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("error") if isinstance(body, dict) else None
    detail = (body.get("detail") if isinstance(body, dict) else None) or response.reason_phrase or "error"
    status = response.status_code
    if status == 429:
        raise RateLimitedError(detail, retry_after(response) or 1.0)
    exc = CODES.get(code) or BY_STATUS.get(status)
    if exc is None:
        raise EmpathyError(f"the server answered {status}: {detail}")
    raise exc(detail)


def retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


@dataclass
class Call:
    """One API request and how to read its answer.

    ``parse`` turns the JSON body into the library's value; ``absent`` lists statuses that are an
    answer rather than an error (404 for a missing value, 204 for no task), with what they mean.
    """

    method: str
    path: str
    json: Any = None
    params: dict | None = None
    token: str | None = None
    wait: float = 0.0
    parse: Callable[[Any], Any] = lambda body: body
    absent: dict = field(default_factory=dict)

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(CONNECT_TIMEOUT, read=READ_TIMEOUT + self.wait)

    def read(self, response: httpx.Response):
        if response.status_code in self.absent:
            return self.absent[response.status_code]
        if response.status_code >= 400:
            raise_for(response)
        return self.parse(response.json() if response.content else None)


class Retry:
    """When to try again: 503 (memory unavailable: nothing was done) and connections that could not be
    made; never a 4xx, never a request that was sent and then lost (it may have been done). The wait
    doubles from ``BACKOFF``, and is at least the server's ``Retry-After``."""

    def __init__(self, retries: int = MAX_RETRIES):
        self.retries = retries

    def decide(self, call: Call, attempt: int, base: str, response: httpx.Response | None = None,
               exc: Exception | None = None):
        """``(None, value)`` when done, ``(seconds, None)`` to wait and try again; raises when it fails."""
        if response is not None and response.status_code != 503:
            return None, call.read(response)
        if exc is not None and not isinstance(exc, httpx.ConnectError):
            raise _unreachable(base, exc) from None
        if attempt >= self.retries:
            if response is not None:
                call.read(response)  # raises MemoryUnavailableError with the server's message
            raise _unreachable(base, exc) from None
        wait = min(MAX_BACKOFF, BACKOFF * 2 ** attempt)
        if response is not None:
            wait = max(wait, min(MAX_BACKOFF, retry_after(response) or 0.0))
        return wait, None


def _unreachable(base: str, exc: Exception) -> MemoryUnavailableError:
    return MemoryUnavailableError(f"the site at {base} did not answer ({type(exc).__name__}: {exc}); retry later")


def _request_args(call: Call) -> dict:
    return dict(json=call.json, params=call.params, headers=call.headers(), timeout=call.timeout())


def send(http: httpx.Client, retry: Retry, call: Call):
    """Send ``call`` on a pooled sync client, retrying as ``retry`` says."""
    attempt = 0
    while True:
        try:
            response = http.request(call.method, API_PREFIX + call.path, **_request_args(call))
            wait, value = retry.decide(call, attempt, str(http.base_url), response=response)
        except httpx.TransportError as exc:
            wait, value = retry.decide(call, attempt, str(http.base_url), exc=exc)
        if wait is None:
            return value
        time.sleep(wait)
        attempt += 1


async def asend(http: httpx.AsyncClient, retry: Retry, call: Call):
    """The async twin of :func:`send`."""
    attempt = 0
    while True:
        try:
            response = await http.request(call.method, API_PREFIX + call.path, **_request_args(call))
            wait, value = retry.decide(call, attempt, str(http.base_url), response=response)
        except httpx.TransportError as exc:
            wait, value = retry.decide(call, attempt, str(http.base_url), exc=exc)
        if wait is None:
            return value
        await asyncio.sleep(wait)
        attempt += 1

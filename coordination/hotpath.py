"""The agent API's hot endpoints, served without Django's request machinery once the caller is known.

An agent at work calls three endpoints over and over: claim a task, extend its lease, complete it.
Through Django each of them costs about 1 ms of framework on top of the work itself (the ASGI
handler's thread-sensitive context, the request signals, the response's close in a thread, ninja's
dispatch). :class:`HotPath` answers them directly on the event loop when, and only when, everything
is ordinary:

- the path and method are one of ``ROUTES`` exactly;
- the bearer token's credentials are in the Redis credentials cache (one GET; see
  :func:`coordination.tokens.cached_credentials_for`), and the client address is not being refused
  for bad tokens;
- the body is within ``DATA_UPLOAD_MAX_MEMORY_SIZE`` and valid for the endpoint's ninja schema.

Anything else (no token, a token not cached yet, bad JSON, a schema error, a large body) goes to the
Django API unchanged, body included, which answers it as always (401, 429, 400, 413, or the work after
a database lookup of the token). The work itself is the same function ninja's handler calls
(``coordination.api.claim_for`` and friends), refusals come from the same error table with the same
bodies and headers, and the response carries the API's security headers. So the hot path is a
shortcut to the same answers, not a second API: ``tests/site/test_hotpath.py`` sends every case
through both and compares.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus

from django.conf import settings
from pydantic import ValidationError, create_model

from empathy_os import EmpathyError

from . import schemas as s
from .api import claim_for, complete_for, extend_for, refusal_headers
from .errors import UNLISTED, answer_for
from .middleware import SECURITY_HEADERS, SERVER_ERROR
from .tokens import cached_credentials_for

log = logging.getLogger("coordination.api")
request_log = logging.getLogger("django.request")  # where Django logs the API's refusals ("Conflict: /api/...")


def _plain(schema):
    """``schema``'s fields as a plain pydantic model: the same validation, without the root validator
    ninja adds for reading Django objects (a third of the hot path's Python time)."""
    return create_model(schema.__name__, **{name: (f.annotation, f) for name, f in schema.model_fields.items()})


_TASK_FIELDS = tuple(s.TaskOut.model_fields)


async def _claim(creds, body, task_id=None):
    task = await claim_for(creds, body)
    # The fields of TaskOut in its order: what ninja's response validation leaves of task_out().
    return (204, None) if task is None else (200, {name: task[name] for name in _TASK_FIELDS})


async def _complete(creds, body, task_id):
    return 200, await complete_for(creds, task_id, body)


async def _extend(creds, body, task_id):
    return 200, await extend_for(creds, task_id, body)


#: (path pattern, body schema, whether an empty body means the schema's defaults, handler).
ROUTES = (
    (re.compile(r"/api/v1/tasks/claim"), _plain(s.ClaimIn), True, _claim),
    (re.compile(r"/api/v1/tasks/(?P<task_id>[^/]+)/complete"), _plain(s.CompleteIn), False, _complete),
    (re.compile(r"/api/v1/tasks/(?P<task_id>[^/]+)/heartbeat"), _plain(s.LeaseIn), True, _extend),
)

_HEADERS = [(b"content-type", b"application/json; charset=utf-8"),
            *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items())]


def _route(path: str):
    for pattern, schema, empty_ok, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return schema, empty_ok, handler, match.groupdict().get("task_id")
    return None


def _bearer(scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class HotPath:
    """ASGI middleware in front of the Django API: the hot endpoints' ordinary requests are answered
    here, everything else by ``app``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = _route(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            return await self.app(scope, receive, send)
        messages, body = [], b""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            body += message.get("body", b"")
            if not message.get("more_body") or (limit is not None and len(body) > limit):
                break
        answer = await self._answer(scope, route, body, messages[-1].get("more_body", False))
        if answer is None:
            return await self.app(scope, _replay(messages, receive), send)
        status, payload, extra = answer
        if 400 <= status < 500:
            request_log.warning("%s: %s", HTTPStatus(status).phrase, scope["path"])
        content = b"" if payload is None else json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_HEADERS, *extra, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, scope, route, body: bytes, unread: bool):
        """``(status, payload, extra headers)``, or None when Django must answer."""
        schema, empty_ok, handler, task_id = route
        if unread or (not body and not empty_ok):
            return None
        client = (scope.get("client") or ("unknown",))[0]
        creds = await cached_credentials_for(_bearer(scope), client)
        if creds is None:
            return None
        try:
            params = schema.model_validate_json(body) if body else schema()
        except ValidationError:
            return None
        try:
            try:
                status, payload = await handler(creds, params, task_id)
            except EmpathyError as exc:
                answer = answer_for(exc)
                if answer == UNLISTED:  # no row for it: ninja would not answer it either, so a 500
                    raise
                status, code = answer
                return status, {"error": code, "detail": str(exc)}, [
                    (name.lower().encode(), value.encode()) for name, value in refusal_headers(status).items()]
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            return 500, SERVER_ERROR, []
        return status, payload, []


def _replay(messages: list, receive):
    """A ``receive`` that hands out the messages already read, then the client's own."""
    pending = list(messages)

    async def replay():
        return pending.pop(0) if pending else await receive()
    return replay

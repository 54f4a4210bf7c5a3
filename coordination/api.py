"""The agent HTTP API, ``/api/v1``: a thin layer over ``empathy_os``.

Who calls is decided by the bearer token (agent id, team, tier), never by the body. Every error is
JSON ``{"error": code, "detail": text}``. Handlers await the library's asyncio twin (``memory.aio``,
``empathy_os.aio``): the same scripts on redis.asyncio, with no thread between a request and Redis;
a signal long-poll is a blocking XREAD on a connection of the event loop. Only the pattern library's
database work (promote, reject, search, rediscoveries) and the team-wide stats run in threads.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Union

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from ninja import NinjaAPI, Query, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from empathy_os import (
    AgentTask,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StagedPattern,
)
from empathy_os.aio import AsyncAgentCoordinator, AsyncTeamSession, get_session_info
from empathy_os.patterns import create_conflict_context, resolve_conflict
from patterns import library

from . import schemas as s
from .errors import ERROR_TABLE, RETRY_AFTER, UNLISTED, answer_for
from .memory import get_memory
from .middleware import DATABASE_DOWN, database_unavailable
from .tokens import TooManyFailures, authenticate

MAX_WAIT = 30.0


def amemory():
    """The asyncio twin of the site's memory."""
    return get_memory().aio


class AgentToken(HttpBearer):
    async def authenticate(self, request, token):
        return await authenticate(token, request.META.get("REMOTE_ADDR") or "unknown")


api = NinjaAPI(title="Empathy coordination API", version="1", urls_namespace="api", auth=AgentToken(),
               openapi_url="/openapi.json", docs_url="/docs")

ERRORS = {400: s.Error, 401: s.Error, 403: s.Error, 404: s.Error, 409: s.Error, 413: s.Error, 429: s.Error,
          503: s.Error}


def error(request, status: int, code: str, detail: str, **headers):
    response = api.create_response(request, {"error": code, "detail": detail}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def refusal_headers(status: int) -> dict:
    """Extra headers of a refusal with ``status`` (``Retry-After`` of a 503)."""
    retry = RETRY_AFTER.get(status)
    return {"Retry-After": str(retry)} if retry else {}


def _refused(request, exc, status: int, code: str):
    response = error(request, status, code, str(exc))
    for name, value in refusal_headers(status).items():
        response[name] = value
    return response


def error_code(exc: Exception) -> str:
    """The API's error code for a library exception (as its HTTP error body would say)."""
    answer = answer_for(exc)
    return "error" if answer == UNLISTED else answer[1]


for _exc, _status, _code in ERROR_TABLE:
    api.add_exception_handler(_exc, lambda request, exc, status=_status, code=_code: _refused(request, exc, status, code))


# A database that does not answer: 503, in DEBUG too (ninja would answer DEBUG with a traceback).
for _exc in DATABASE_DOWN:
    api.add_exception_handler(_exc, database_unavailable)


@api.exception_handler(ValidationError)
def _validation(request, exc):
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors)
    return error(request, 400, "invalid_input", problems or "invalid request")


@api.exception_handler(AuthenticationError)
def _unauthorized(request, exc):
    return error(request, 401, "unauthorized", "send a valid agent token: 'Authorization: Bearer <token>'",
                 WWW_Authenticate="Bearer")


@api.exception_handler(TooManyFailures)
def _too_many_failures(request, exc):
    return error(request, 429, "too_many_requests", str(exc), Retry_After=str(exc.retry_after))


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error(request, 413, "too_large", f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")


@api.exception_handler(HttpError)
def _http_error(request, exc):
    code = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return error(request, exc.status_code, code, str(exc))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error(request, 404, "not_found", str(exc) or "not found")


def coordinator(request) -> AsyncAgentCoordinator:
    return coordinator_for(request.auth)


def coordinator_for(creds) -> AsyncAgentCoordinator:
    return AsyncAgentCoordinator(amemory(), creds.team_id, creds)


def task_out(task: AgentTask) -> dict:
    return {**task.to_dict(), "lease_token": task.lease_token}


# -- health and stats -------------------------------------------------------------------------------


@api.get("/health", auth=None, response={200: dict, 503: s.Error}, tags=["health"])
async def health(request):
    """Memory mode and whether Redis answers. No token needed."""
    memory = amemory()
    reachable = await memory.check_connection()
    if memory.mode != "mock" and not reachable:
        return error(request, 503, "memory_unavailable", "Redis does not answer", Retry_After="1")
    return {"status": "ok", "memory_mode": memory.mode, "redis_reachable": reachable}


@api.get("/stats", response={200: dict, **ERRORS}, tags=["health"])
async def stats(request):
    return await amemory().get_stats()


# -- working memory -------------------------------------------------------------------------------


@api.put("/memory/{key}", response={200: s.MemoryOut, **ERRORS}, tags=["memory"])
async def put_memory(request, key: str, body: s.MemoryIn):
    """Stash a JSON value under the caller's own ``key``."""
    await amemory().stash(request.auth, key, body.value, body.ttl)
    return {"key": key, "agent_id": request.auth.agent_id, "value": body.value}


@api.get("/memory/{key}", response={200: s.MemoryOut, **ERRORS}, tags=["memory"])
async def get_memory_value(request, key: str, agent_id: Optional[str] = None):
    """The caller's value for ``key``, or another agent's with ``?agent_id=``."""
    owner = agent_id or request.auth.agent_id
    value = await amemory().retrieve(request.auth, key, owner)
    if value is None:
        raise NotFoundError(f"agent {owner} has no value under {key}")
    return {"key": key, "agent_id": owner, "value": value}


@api.delete("/memory/{key}", response={204: None, **ERRORS}, tags=["memory"])
async def delete_memory(request, key: str):
    if not await amemory().forget(request.auth, key):
        raise NotFoundError(f"you have no value under {key}")
    return Status(204, None)


# -- agents ---------------------------------------------------------------------------------------


@api.post("/agents/register", response={200: dict, **ERRORS}, tags=["agents"])
async def register(request, body: s.RegisterIn):
    """Register the caller (a steward: ``agent_id``) with the task types it can do: once per agent
    process, at start. Leases still held under its id (a previous process) go back to the queue
    (``released``)."""
    agent_id = body.agent_id or request.auth.agent_id
    released = await coordinator(request).register_agent(agent_id, body.capabilities)
    return {"agent_id": agent_id, "team_id": request.auth.team_id, "capabilities": body.capabilities,
            "released": released}


@api.post("/agents/heartbeat", response={200: dict, **ERRORS}, tags=["agents"])
async def heartbeat(request, body: Optional[s.HeartbeatIn] = None):
    """Mark the caller (a steward: ``agent_id``) alive and renew every lease it holds."""
    body = body or s.HeartbeatIn()
    agent_id = body.agent_id or request.auth.agent_id
    renewed = await coordinator(request).heartbeat(agent_id, body.lease_seconds)
    return {"agent_id": agent_id, "leases_renewed": renewed}


@api.get("/agents", response={200: list[dict], **ERRORS}, tags=["agents"])
async def agents(request):
    return await coordinator(request).get_agents()


# -- tasks ----------------------------------------------------------------------------------------


@api.post("/tasks", response={201: s.AddedOut, **ERRORS}, tags=["tasks"])
async def add_tasks(request, body: Union[s.TaskIn, list[s.TaskIn]]):
    """Add one task or a batch. Ids that exist already are listed in ``existing`` (409 for a single task)."""
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > 1000:
        raise InvalidInputError("send 1 to 1000 tasks")
    tasks = [AgentTask(**item.dict()) for item in items]
    flags = await coordinator(request).add_tasks(tasks)
    if not isinstance(body, list) and not flags[0]:
        raise ConflictError(f"task {tasks[0].task_id} already exists")
    return Status(201, {"added": [t.task_id for t, f in zip(tasks, flags) if f],
                        "existing": [t.task_id for t, f in zip(tasks, flags) if not f]})


@api.post("/tasks/claim", response={200: s.TaskOut, 204: None, **ERRORS}, tags=["tasks"])
async def claim(request, body: Optional[s.ClaimIn] = None):
    """Claim the best pending task (of ``task_type``, or of the caller's capabilities) for the caller (a
    steward: for ``agent_id``). 204 if none."""
    task = await claim_for(request.auth, body or s.ClaimIn())
    return Status(204, None) if task is None else task


# The bodies of the hot endpoints (claim, complete, lease heartbeat), which coordination.hotpath also
# serves without Django once a request's token is in the credentials cache: one implementation for both.


async def claim_for(creds, body: s.ClaimIn) -> Optional[dict]:
    task = await coordinator_for(creds).claim_task(body.agent_id or creds.agent_id, body.task_type,
                                                   lease_seconds=body.lease_seconds)
    return None if task is None else task_out(task)


async def complete_for(creds, task_id: str, body: s.CompleteIn) -> dict:
    credited = await coordinator_for(creds).complete_task(task_id, body.result, body.agent_id,
                                                          lease_token=body.lease_token)
    return {"task_id": task_id, "status": "completed", "agent_id": credited}


async def extend_for(creds, task_id: str, body: s.LeaseIn) -> dict:
    expires = await coordinator_for(creds).extend_lease(task_id, body.agent_id, lease_seconds=body.lease_seconds,
                                                        lease_token=body.lease_token)
    return {"task_id": task_id, "lease_expires_at": expires}


@api.post("/tasks/claim-batch", response={200: list[s.TaskOut], **ERRORS}, tags=["tasks"])
async def claim_batch(request, body: s.ClaimBatchIn):
    """Claim up to ``n`` of the best pending tasks in one round trip, each with its own lease (as ``n``
    claims in a row would). An empty list if none is pending."""
    tasks = await coordinator(request).claim_tasks(body.agent_id or request.auth.agent_id, body.n, body.task_type,
                                                   lease_seconds=body.lease_seconds)
    return [task_out(t) for t in tasks]


@api.post("/tasks/complete-batch", response={200: s.CompleteBatchOut, **ERRORS}, tags=["tasks"])
async def complete_batch(request, body: s.CompleteBatchIn):
    """Complete several tasks the caller holds in one round trip. Each is checked on its own (holder,
    lease, exactly once): its result says ``completed`` or the error a single completion would get."""
    items = [(c.task_id, c.result, c.lease_token) for c in body.completions]
    replies = await coordinator(request).complete_tasks(items, body.agent_id)
    results = []
    for (task_id, _, _), reply in zip(items, replies):
        if isinstance(reply, Exception):
            results.append({"task_id": task_id, "status": "error", "error": error_code(reply), "detail": str(reply)})
        else:
            results.append({"task_id": task_id, "status": "completed", "credited": reply})
    return {"completed": sum(r["status"] == "completed" for r in results), "results": results}


@api.post("/tasks/{task_id}/complete", response={200: dict, **ERRORS}, tags=["tasks"])
async def complete(request, task_id: str, body: s.CompleteIn):
    """Complete a task the caller holds (409 ``lease`` if it does not, or its lease expired; a steward
    completes whoever's claim). ``agent_id`` is the agent credited."""
    return await complete_for(request.auth, task_id, body)


@api.post("/tasks/{task_id}/fail", response={200: dict, **ERRORS}, tags=["tasks"])
async def fail(request, task_id: str, body: s.FailIn):
    status = await coordinator(request).fail_task(task_id, body.reason, body.agent_id,
                                                  retry=body.retry, lease_token=body.lease_token)
    return {"task_id": task_id, "status": status}


@api.post("/tasks/{task_id}/heartbeat", response={200: dict, **ERRORS}, tags=["tasks"])
async def extend(request, task_id: str, body: Optional[s.LeaseIn] = None):
    """Extend the lease on a task the caller holds."""
    return await extend_for(request.auth, task_id, body or s.LeaseIn())


@api.get("/tasks", response={200: list[s.TaskOut], **ERRORS}, tags=["tasks"])
async def list_tasks(request, status: str = "pending", limit: int = 100):
    tasks = await coordinator(request).list_tasks(status, limit)
    return [task_out(t) for t in tasks]


@api.get("/tasks/{task_id}", response={200: s.TaskOut, **ERRORS}, tags=["tasks"])
async def get_task(request, task_id: str):
    task = await coordinator(request).get_task(task_id)
    if task is None:
        raise NotFoundError(f"no task {task_id} in team {request.auth.team_id}")
    return task_out(task)


@api.get("/results", response={200: dict, **ERRORS}, tags=["tasks"])
async def results(request):
    """Exact totals: ``total_completed``, ``by_agent``, ``by_type``, failures."""
    return await coordinator(request).aggregate_results()


# -- signals --------------------------------------------------------------------------------------


@api.post("/signals", response={201: dict, **ERRORS}, tags=["signals"])
async def send(request, body: s.SignalIn):
    """Send to ``target_agent``, or broadcast to the team when it is null."""
    signal_id = await amemory().send_signal(request.auth, body.signal_type, body.data, body.target_agent)
    return Status(201, {"id": signal_id})


@api.get("/signals", response={200: list[s.SignalOut], **ERRORS}, tags=["signals"])
async def receive(request, type: Optional[str] = None, wait: float = Query(0, ge=0, le=MAX_WAIT)):
    """Signals not received yet (targeted and broadcast), oldest first; ``wait`` seconds long-polls."""
    return await amemory().receive_signals(request.auth, type, wait=wait or None)


# -- sessions -------------------------------------------------------------------------------------


def _session(request, session_id: str, purpose: str = "") -> AsyncTeamSession:
    return AsyncTeamSession(amemory(), session_id, purpose, team_id=request.auth.team_id, credentials=request.auth)


async def _session_info(request, session_id: str) -> dict:
    info = await get_session_info(amemory(), request.auth.team_id, session_id)
    if not info:
        raise NotFoundError(f"no session {session_id} in team {request.auth.team_id}")
    return info


@api.post("/sessions", response={200: s.SessionOut, 201: s.SessionOut, **ERRORS}, tags=["sessions"])
async def open_session(request, body: s.SessionIn):
    """Create a session (201), or open the existing one with that id (200)."""
    request.auth.require(request.auth.tier.CONTRIBUTOR, "open a session")
    created = await _session(request, body.session_id, body.purpose).open()
    return Status(201 if created else 200, await _session_info(request, body.session_id))


@api.post("/sessions/{session_id}/join", response={200: s.SessionOut, **ERRORS}, tags=["sessions"])
async def join(request, session_id: str, body: Optional[s.JoinIn] = None):
    """Join the session (a steward: add ``agent_id``)."""
    await _session_info(request, session_id)
    agent_id = (body and body.agent_id) or request.auth.agent_id
    await _session(request, session_id).add_agent(agent_id)
    return await _session_info(request, session_id)


@api.put("/sessions/{session_id}/context/{key}", response={200: s.ContextOut, **ERRORS}, tags=["sessions"])
async def share(request, session_id: str, key: str, body: s.ValueIn):
    await _session_info(request, session_id)
    await _session(request, session_id).share(key, body.value)
    return {"key": key, "value": body.value}


@api.get("/sessions/{session_id}/context/{key}", response={200: s.ContextOut, **ERRORS}, tags=["sessions"])
async def shared(request, session_id: str, key: str):
    await _session_info(request, session_id)
    missing = object()
    value = await _session(request, session_id).get(key, missing)
    if value is missing:
        raise NotFoundError(f"session {session_id} has no context {key}")
    return {"key": key, "value": value}


@api.get("/sessions/{session_id}", response={200: s.SessionOut, **ERRORS}, tags=["sessions"])
async def session_info(request, session_id: str):
    return await _session_info(request, session_id)


# -- patterns -------------------------------------------------------------------------------------


@api.post("/patterns/staged", response={201: s.StagedOut, 200: s.StagedOut, **ERRORS}, tags=["patterns"])
async def stage(request, body: s.PatternIn):
    """Stage a pattern for validation, as the caller (201 new, 200 updated; 409 ``staging_full`` when the
    team has ``staged_pattern_limit`` patterns staged)."""
    pattern = StagedPattern(agent_id=request.auth.agent_id, **body.dict())
    created = await amemory().stage_pattern(request.auth, pattern)
    return Status(201 if created else 200, pattern.to_dict())


@api.get("/patterns/staged", response={200: list[s.StagedOut], **ERRORS}, tags=["patterns"])
async def staged(request):
    """Patterns awaiting validation, oldest first; ``rediscovery_of`` names a library pattern with the same content."""
    patterns = await amemory().get_staged_patterns(request.auth)
    again = await sync_to_async(library.rediscoveries)(request.auth.team_id, patterns)
    return [{**p.to_dict(), "rediscovery_of": again.get(p.pattern_id)} for p in patterns]


@api.post("/patterns/staged/{pattern_id}/promote", response={200: s.LibraryOut, **ERRORS}, tags=["patterns"])
async def promote(request, pattern_id: str, body: Optional[s.PromoteIn] = None):
    """Promote into the library (validators; exactly once)."""
    return await sync_to_async(library.promote)(get_memory(), request.auth, pattern_id, body.note if body else "")


@api.post("/patterns/staged/{pattern_id}/reject", response={200: s.DecisionOut, **ERRORS}, tags=["patterns"])
async def reject(request, pattern_id: str, body: s.RejectIn):
    """Reject with a reason (validators; exactly once)."""
    return await sync_to_async(library.reject)(get_memory(), request.auth, pattern_id, body.reason)


@api.get("/patterns/library", response={200: list[s.LibraryOut], **ERRORS}, tags=["patterns"])
async def search_library(request, q: str = Query("", max_length=200), type: str = Query("", max_length=128)):
    """Search approved patterns by text and type; each look-up counts toward the reuse rate."""
    return await sync_to_async(library.search)(request.auth.team_id, q, type)


# -- collaboration state --------------------------------------------------------------------------


@api.put("/state/{session_id}", response={200: s.StateOut, **ERRORS}, tags=["state"])
async def put_state(request, session_id: str, body: s.StateIn):
    await amemory().persist_state(request.auth, session_id, body.state)
    return {"session_id": session_id, "state": body.state}


@api.get("/state/{session_id}", response={200: s.StateOut, **ERRORS}, tags=["state"])
async def get_state(request, session_id: str):
    state = await amemory().restore_state(request.auth, session_id)
    if state is None:
        raise NotFoundError(f"no collaboration state of {request.auth.agent_id} for session {session_id}")
    return {"session_id": session_id, "state": state}


# -- added for empathy_os.client and the MCP tools (issue 11) -------------------------------------


@api.get("/me", response={200: s.MeOut, **ERRORS}, tags=["agents"])
async def me(request):
    """Who the token stands for: agent, team and tier (decided here, never by a request)."""
    creds = request.auth
    return {"agent_id": creds.agent_id, "team_id": creds.team_id, "tier": str(creds.tier)}


@api.post("/sessions/{session_id}/leave", response={200: s.SessionOut, **ERRORS}, tags=["sessions"])
async def leave(request, session_id: str, body: Optional[s.JoinIn] = None):
    """Leave the session (a steward: remove ``agent_id``)."""
    await _session_info(request, session_id)
    agent_id = (body and body.agent_id) or request.auth.agent_id
    await _session(request, session_id).remove_agent(agent_id)
    return await _session_info(request, session_id)


@api.get("/sessions/{session_id}/context", response={200: dict, **ERRORS}, tags=["sessions"])
async def context(request, session_id: str):
    """The session's whole shared context, by key."""
    await _session_info(request, session_id)
    return await _session(request, session_id).get_context()


@api.get("/tasks/{task_id}/history", response={200: list[dict], **ERRORS}, tags=["tasks"])
async def task_history(request, task_id: str):
    """The task's lease history: added, claimed, requeued, completed or failed, with times and agents."""
    if await coordinator(request).get_task(task_id) is None:
        raise NotFoundError(f"no task {task_id} in team {request.auth.team_id}")
    return await coordinator(request).get_task_history(task_id)


def _conflict_out(conflict) -> dict:
    return dataclasses.asdict(conflict)


@api.post("/conflicts", response={201: s.ConflictOut, **ERRORS}, tags=["conflicts"])
async def create_conflict(request, body: s.ConflictIn):
    """Record a disagreement between agents (contributors and above)."""
    conflict = await in_thread(create_conflict_context, get_memory(), request.auth, body.conflict_id, body.positions,
                               interests=body.interests, batna=body.batna)
    return Status(201, _conflict_out(conflict))


@api.post("/conflicts/{conflict_id}/resolve", response={200: s.ConflictOut, **ERRORS}, tags=["conflicts"])
async def resolve(request, conflict_id: str, body: s.ResolveIn):
    """Resolve a conflict (validators; exactly once: 409 after that)."""
    return _conflict_out(await in_thread(resolve_conflict, get_memory(), request.auth, conflict_id, body.resolution))


def in_thread(fn, *args, **kwargs):
    """The library calls with no asyncio twin (conflicts) run in a worker thread."""
    return sync_to_async(functools.partial(fn, *args, **kwargs), thread_sensitive=False)()

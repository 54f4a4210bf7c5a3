"""The MCP server: the agent API as Model Context Protocol tools, for LLM agent hosts.

Built on the official SDK (``mcp.server.mcpserver.MCPServer``). Every tool is one call of
``empathy_os.client.AsyncClient`` to the agent API, so it passes the same checks as any HTTP call
(token, team, tier, rate limits, input validation: the API's handlers and the library's rules, not a
second set). The client's transport decides where the API is:

- ``/mcp`` in the site (streamable HTTP, :class:`McpEndpoint`): each request's bearer token, sent
  in process to the site's own API app (no network hop);
- ``manage.py mcp`` (stdio, for a local agent): one token, sent in process, or to ``--url``.

A refused or failed call comes back as a tool error carrying the API's message; the server goes on.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Annotated, Any, Callable, Optional

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from empathy_os import EmpathyError
from empathy_os.client import AsyncClient

INSTRUCTIONS = """Tools of an Empathy coordination team: a shared short-term memory, a task queue with
leases, signals between agents, shared session context and a library of validated patterns.
Typical loop: register_agent once, then claim_task -> do the work (heartbeat while it lasts) ->
complete_task (or fail_task) -> send_signal to tell the team. Before solving a problem from scratch,
search_library for an approved pattern; stage_pattern what you discovered for validators to review.
Your identity, team and tier come from your token: observers read, contributors write, validators
also promote and reject."""

MAX_WAIT = 30.0

#: ``client_for(ctx) -> AsyncClient``: the client that speaks for the caller of this request.
ClientFor = Callable[[Optional[Context]], AsyncClient]

Key = Annotated[str, Field(description="a key: 1-128 of A-Z a-z 0-9 _ . -", max_length=128)]
Id = Annotated[str, Field(description="an id: 1-128 of A-Z a-z 0-9 _ . -", max_length=128)]
LeaseToken = Annotated[Optional[str], Field(description="the lease_token claim_task returned (fencing)")]


def _task(task) -> dict | None:
    return None if task is None else {**task.to_dict(), "lease_token": task.lease_token}


def build_server(client_for: ClientFor) -> MCPServer:
    """The MCP server with every tool and resource; ``client_for`` gives the caller's client."""
    # MCPServer() calls logging.basicConfig (a rich handler on the root logger, at INFO): in the site
    # that would log every in-process API call. The process keeps the logging its settings gave it.
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    server = MCPServer("empathy-coordination", instructions=INSTRUCTIONS, version="1", log_level="WARNING")
    root.setLevel(level)
    root.handlers[:] = handlers

    async def call(ctx, op: str, *args, **kwargs):
        try:
            return await getattr(client_for(ctx), op)(None, *args, **kwargs)
        except EmpathyError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # bad arguments the client refused before sending
            raise ToolError(f"InvalidInputError: {exc}") from None

    @server.tool()
    async def stash(key: Key, value: Annotated[Any, Field(description="any JSON value")], ctx: Context,
                    ttl: Annotated[Optional[float], Field(description="seconds to keep it; default one hour", gt=0)] = None) -> dict:
        """Store a JSON value under a key in your own working memory (it expires after ttl seconds)."""
        await call(ctx, "stash", key, value, ttl)
        return {"key": key, "stored": True}

    @server.tool()
    async def retrieve(key: Key, ctx: Context,
                       agent_id: Annotated[Optional[str], Field(description="another agent of your team; default you")] = None) -> dict:
        """Read a value from your working memory, or from another agent's of your team. value is null if absent."""
        return {"key": key, "value": await call(ctx, "retrieve", key, agent_id)}

    @server.tool()
    async def register_agent(ctx: Context, capabilities: Annotated[Optional[list[str]], Field(
            description="task types you can do: claim_task without a type picks among them")] = None) -> dict:
        """Register yourself with the task types you can do (once per process, at start)."""
        released = await call(ctx, "register", None, capabilities or [])
        return {"registered": True, "capabilities": capabilities or [], "released": released}

    @server.tool()
    async def claim_task(ctx: Context,
                         task_type: Annotated[Optional[str], Field(description="only this type; default your capabilities")] = None,
                         lease_seconds: Annotated[Optional[float], Field(description="lease length; default the team's", gt=0)] = None) -> dict:
        """Claim the best pending task (highest priority first). You hold a lease: heartbeat to keep it,
        then complete_task or fail_task with its lease_token. task is null when none is pending."""
        return {"task": _task(await call(ctx, "claim", None, task_type, lease_seconds))}

    @server.tool()
    async def complete_task(task_id: Id, ctx: Context,
                            result: Annotated[Any, Field(description="the task's result, any JSON")] = None,
                            lease_token: LeaseToken = None) -> dict:
        """Complete a task you hold, with its result (refused if your lease lapsed and it was claimed again)."""
        await call(ctx, "complete", task_id, result, None, lease_token)
        return {"task_id": task_id, "status": "completed"}

    @server.tool()
    async def fail_task(task_id: Id, reason: Annotated[str, Field(description="why", min_length=1, max_length=2000)],
                        ctx: Context, retry: Annotated[bool, Field(description="return it to the queue while attempts remain")] = False,
                        lease_token: LeaseToken = None) -> dict:
        """Give up a task you hold: it fails with the reason, or goes back to the queue with retry."""
        return {"task_id": task_id, "status": await call(ctx, "fail", task_id, reason, None, retry, lease_token)}

    @server.tool()
    async def heartbeat(ctx: Context, lease_seconds: Annotated[Optional[float], Field(gt=0)] = None) -> dict:
        """Say you are alive and renew the lease of every task you hold."""
        return {"leases_renewed": await call(ctx, "beat", None, lease_seconds)}

    @server.tool()
    async def send_signal(signal_type: Id, ctx: Context,
                          data: Annotated[Any, Field(description="any JSON payload")] = None,
                          target_agent: Annotated[Optional[str], Field(description="one agent; default: broadcast to the team")] = None) -> dict:
        """Send a signal to one agent of your team, or broadcast it to the whole team."""
        return {"id": await call(ctx, "send_signal", signal_type, data, target_agent)}

    @server.tool()
    async def receive_signals(ctx: Context, signal_type: Annotated[Optional[str], Field(description="only this type")] = None,
                              wait: Annotated[float, Field(description="seconds to wait for one when none is there", ge=0, le=MAX_WAIT)] = 0) -> dict:
        """Signals for you (to you, or broadcast) not received yet, oldest first; wait seconds for one."""
        return {"signals": await call(ctx, "receive_signals", signal_type, wait=wait or None)}

    @server.tool()
    async def stage_pattern(pattern_id: Id, pattern_type: Id, name: Annotated[str, Field(min_length=1, max_length=200)],
                            ctx: Context, description: str = "",
                            confidence: Annotated[float, Field(ge=0, le=1)] = 0.5,
                            code: Annotated[Optional[str], Field(description="an example, shown to validators")] = None,
                            context: Annotated[dict, Field(description="where and why you found it")] = None) -> dict:
        """Stage a pattern you discovered, for a validator to approve into the team's library (contributors and up)."""
        pattern = SimpleNamespace(pattern_id=pattern_id, pattern_type=pattern_type, name=name, description=description,
                                  confidence=confidence, code=code, context=context or {})  # validated by the API
        created = await call(ctx, "stage_pattern", pattern)
        return {"pattern_id": pattern_id, "staged": True, "updated": not created}

    @server.tool()
    async def search_library(ctx: Context, query: Annotated[str, Field(description="words to look for", max_length=200)] = "",
                             pattern_type: Annotated[str, Field(max_length=128)] = "") -> dict:
        """Search the team's library of approved patterns before solving a problem again (counts as a reuse)."""
        return {"patterns": await call(ctx, "search_library", query, pattern_type)}

    @server.tool()
    async def list_staged_patterns(ctx: Context) -> dict:
        """Patterns staged in your team and waiting for a validator's decision."""
        return {"patterns": [p.to_dict() for p in await call(ctx, "get_staged_patterns")]}

    @server.tool()
    async def get_session_context(session_id: Id, ctx: Context,
                                  key: Annotated[Optional[str], Field(description="one key; default all of them")] = None) -> dict:
        """Read a team session's shared context (one key, or all)."""
        if key is None:
            return {"session_id": session_id, "context": await call(ctx, "session_context", session_id)}
        return {"session_id": session_id, "key": key, "value": await call(ctx, "session_get", session_id, key)}

    @server.tool()
    async def update_session_context(session_id: Id, key: Key, value: Any, ctx: Context) -> dict:
        """Share a value with every participant of a team session (the session must exist)."""
        await call(ctx, "session_share", session_id, key, value)
        return {"session_id": session_id, "key": key, "shared": True}

    async def read(ctx, op: str, *args):
        try:
            return await call(ctx, op, *args)
        except ToolError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("empathy://team/agents/{which}", mime_type="application/json")
    async def team_agents(which: str, ctx: Context) -> list:
        """The agents of your team (which: all, or active): capabilities, last heartbeat, active or not."""
        if which not in ("all", "active"):
            raise ResourceError("which is all or active")
        agents = await read(ctx, "get_agents")
        return [a for a in agents if a["active"]] if which == "active" else agents

    @server.resource("empathy://team/tasks/{status}", mime_type="application/json")
    async def team_tasks(status: str, ctx: Context) -> list:
        """Your team's tasks in one status: pending, in_progress, completed or failed."""
        return [_task(t) for t in await read(ctx, "list_tasks", status)]

    return server

"""MCP clients of the SDK for the tests: over streamable HTTP to a site's ``/mcp`` with a bearer token,
or over stdio to ``manage.py mcp``; ``call`` returns a tool's JSON answer or raises ``ToolFailed``."""

from __future__ import annotations

import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]

TOOLS = {"stash", "retrieve", "register_agent", "claim_task", "complete_task", "fail_task", "heartbeat",
         "send_signal", "receive_signals", "stage_pattern", "search_library", "list_staged_patterns",
         "get_session_context", "update_session_context"}


class ToolFailed(Exception):
    """A tool answered with an error (``is_error``); the message is the tool's."""


@asynccontextmanager
async def mcp_over_http(site_url: str, token: str):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(site_url + "/mcp", http_client=http)) as client:
            yield client


def stdio_params(*args: str, env: dict | None = None) -> StdioServerParameters:
    """``manage.py mcp ARGS`` in a fresh interpreter, with nothing of this process's Redis settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMPATHY_") and k not in ("REDIS_URL",)}
    base["DJANGO_SETTINGS_MODULE"] = "empathy_site.settings"
    return StdioServerParameters(command=sys.executable, args=["manage.py", "mcp", *args], cwd=str(ROOT),
                                 env={**base, **(env or {})})


@asynccontextmanager
async def mcp_over_stdio(*args: str, env: dict | None = None):
    async with Client(stdio_params(*args, env=env)) as client:
        yield client


async def call(client, tool: str, **arguments):
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    if result.is_error:
        raise ToolFailed(text)
    return json.loads(text)

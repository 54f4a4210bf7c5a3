"""Lua scripts: loaded from ``lua/`` once, registered with the client, called with EVALSHA.

Every script begins with ``lua/_common.lua`` (clock, event emitter, error helper); the task
scripts (``task_*.lua``, and ``register_agent.lua``, which releases a previous incarnation's leases)
also get ``lua/_tasks.lua`` (reaper, fencing checks, retention); pattern scripts (``pattern_*.lua``)
get ``lua/_patterns.lua``.
Errors a script raises on purpose start with an upper-case code (``NOT_FOUND``, ``NOT_HELD``...)
that :func:`translate_error` maps to the library's exceptions.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from redis.exceptions import ResponseError

from .exceptions import (
    AccessDeniedError,
    ConflictError,
    EmpathyError,
    InvalidInputError,
    LeaseError,
    NotFoundError,
    StagingFullError,
)

LUA_DIR = Path(__file__).parent / "lua"

SCRIPT_NAMES = (
    "put",
    "delete",
    "register_agent",
    "heartbeat",
    "task_add",
    "task_claim",
    "task_complete",
    "task_fail",
    "task_extend",
    "task_reap",
    "signal_send",
    "signal_receive",
    "session",
    "pattern_stage",
    "pattern_decide",
    "pattern_restore",
    "pattern_lock",
    "conflict_create",
    "conflict_resolve",
)

ERROR_CODES = {
    "NOT_FOUND": NotFoundError,
    "NOT_HELD": LeaseError,
    "EXPIRED": LeaseError,
    "ALREADY_DONE": ConflictError,
    "EXISTS": ConflictError,
    "NOT_OWNER": AccessDeniedError,
    "NOT_REGISTERED": InvalidInputError,
    "FULL": StagingFullError,
}


# A top-level local function of a prelude: one line ending in "end", or up to a line "end".
_FUNCTION = re.compile(r"^local function (\w+)\((?:[^\n]*\bend\n|.*?^end\n)", re.M | re.S)


def _used_functions(preludes: str, body: str) -> str:
    """The preludes without the local functions the script never calls (directly or through the
    functions it does call). Redis runs a script's whole text on every call, and each
    ``local function`` is a closure created each time (about 0.1 µs apiece)."""
    chunks = {m.group(1): m for m in _FUNCTION.finditer(preludes)}
    needed, todo = set(), [body]
    while todo:
        text = todo.pop()
        for name, m in chunks.items():
            if name not in needed and re.search(rf"\b{name}\b", text):
                needed.add(name)
                todo.append(m.group(0))
    return _FUNCTION.sub(lambda m: m.group(0) if m.group(1) in needed else "", preludes)


@lru_cache(maxsize=None)
def source(name: str) -> str:
    """The full source of a script, with its preludes (only the prelude functions it uses)."""
    parts = [(LUA_DIR / "_common.lua").read_text()]
    if name.startswith("task_") or name == "register_agent":
        parts.append((LUA_DIR / "_tasks.lua").read_text())
    if name.startswith("pattern_"):
        parts.append((LUA_DIR / "_patterns.lua").read_text())
    body = (LUA_DIR / f"{name}.lua").read_text()
    return _used_functions("\n".join(parts), body) + "\n" + body


class Script:
    """A script's source and SHA-1: called with EVALSHA, loaded (SCRIPT LOAD) only when Redis lacks it."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str):
        self.name = name
        self.source = source(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


SCRIPTS = {name: Script(name) for name in SCRIPT_NAMES}


def translate_error(exc: ResponseError) -> Exception:
    """Map a script's error reply to the library exception it stands for."""
    return error_from_reply(str(exc))


def error_from_reply(message: str) -> Exception:
    """The library exception for an error text ``CODE detail`` (a script's error reply, or one
    item's error in a batch reply)."""
    code, _, detail = message.partition(" ")
    cls = ERROR_CODES.get(code)
    if cls is None:
        return EmpathyError(f"Redis refused the operation: {message}")
    return cls(detail)

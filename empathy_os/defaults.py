"""Named defaults for every limit and lifetime in the library.

Each constant can be overridden for a whole process by an environment variable
``EMPATHY_<NAME>`` (read by :meth:`Config.from_env`) and most per call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

#: Prefix of every key the library writes. Several deployments can share one Redis.
KEY_PREFIX = "empathy"

#: Team used when none is given (the chapter's ``EmpathyOS`` and ``TeamSession``).
DEFAULT_TEAM = "default"

#: Largest JSON value accepted anywhere (working memory, task context/result, signal data, patterns).
MAX_VALUE_BYTES = 1024 * 1024

#: Working memory written with ``stash`` lives this long unless a ``ttl`` is given.
WORKING_MEMORY_TTL = 3600

#: Sessions (info, participants, shared context) expire this long after their last activity.
SESSION_TTL = 24 * 3600

#: Persisted collaboration state lives this long.
COLLABORATION_STATE_TTL = 7 * 24 * 3600

#: Conflict contexts live this long.
CONFLICT_TTL = 24 * 3600

#: A promote/reject decision is remembered in Redis this long (the durable record is the site's database).
DECISION_TTL = 30 * 24 * 3600

#: A claimed task belongs to its holder this long unless the lease is renewed by a heartbeat.
TASK_LEASE_SECONDS = 60

#: A task whose lease expires this many times is moved to ``failed`` instead of back to pending.
TASK_MAX_ATTEMPTS = 3

#: Finished (completed or failed) task records are kept this long ...
FINISHED_TASK_RETENTION_SECONDS = 24 * 3600

#: ... and at most this many of each kind per team (oldest trimmed first). Counters are never trimmed.
FINISHED_TASK_RETENTION_COUNT = 10_000

#: Approximate cap (``MAXLEN ~``) of each signal stream: an agent inbox or a team's broadcast stream.
SIGNAL_STREAM_MAXLEN = 10_000

#: Approximate cap of each team's domain-event stream (what the dashboard relays).
EVENT_STREAM_MAXLEN = 10_000

#: Signal stream entries older than this are trimmed (approximately: whole stream nodes) by a later send
#: to the stream, in the same script as that write (every 16th signal of the team trims its stream).
SIGNAL_RETENTION_SECONDS = 24 * 3600

#: Event stream entries older than this are trimmed (approximately) whenever the team emits an event.
EVENT_RETENTION_SECONDS = 24 * 3600

#: Patterns a team may have staged at once; staging a new one beyond it raises ``StagingFullError``
#: (a candidate is refused, never silently dropped) until validators decide some.
STAGED_PATTERN_LIMIT = 1000

#: Staged patterns nobody decided within this time are removed (event ``pattern.expired``) the next
#: time the team stages a pattern.
STAGED_PATTERN_RETENTION_SECONDS = 30 * 24 * 3600

#: An agent that sent no heartbeat for this long is no longer listed as active.
AGENT_ACTIVE_SECONDS = 120

#: Expired leases returned to the queue per claim (the rest wait for the next claim or reaper pass).
REAP_BATCH = 50

#: Signal stream entries one ``receive_signals`` call examines at most per stream.
SIGNAL_SCAN_LIMIT = 1000

#: A waiting ``receive_signals`` blocks on the streams for at most this long per XREAD (and loops
#: until its wait is over): below the clients' 5 s socket timeout, so a long wait is never a timeout.
BLOCK_SLICE_SECONDS = 4.0

#: Connections the asyncio twin opens per event loop (per node on a cluster): enough for every
#: request of a busy API process and its signal long-polls (each holds one for up to 4 s); past it,
#: a request waits for a free connection (plain Redis) instead of failing.
ASYNC_MAX_CONNECTIONS = 512

#: Most tasks one ``claim_tasks`` / ``complete_tasks`` call handles (one script, one round trip).
MAX_BATCH = 1000

#: Priorities run from ``MIN_PRIORITY`` to ``MAX_PRIORITY``; higher is claimed first.
MIN_PRIORITY = 0
MAX_PRIORITY = 1000

#: Failed token checks one client (IP address) may make within ``AUTH_FAILURE_WINDOW`` seconds; beyond
#: that it is answered 429 with ``Retry-After`` until the window ends (``EMPATHY_AUTH_FAILURE_LIMIT``).
AUTH_FAILURE_LIMIT = 20

#: The window of ``AUTH_FAILURE_LIMIT``, in seconds, from the client's first failure (``EMPATHY_AUTH_FAILURE_WINDOW``).
AUTH_FAILURE_WINDOW = 60

#: How long ``get_redis_memory`` waits for localhost:6379 before it falls back to mock mode.
PROBE_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True)
class Config:
    """The limits one :class:`RedisShortTermMemory` works with."""

    key_prefix: str = KEY_PREFIX
    max_value_bytes: int = MAX_VALUE_BYTES
    working_memory_ttl: int = WORKING_MEMORY_TTL
    session_ttl: int = SESSION_TTL
    collaboration_state_ttl: int = COLLABORATION_STATE_TTL
    conflict_ttl: int = CONFLICT_TTL
    decision_ttl: int = DECISION_TTL
    task_lease_seconds: float = TASK_LEASE_SECONDS
    task_max_attempts: int = TASK_MAX_ATTEMPTS
    finished_task_retention_seconds: int = FINISHED_TASK_RETENTION_SECONDS
    finished_task_retention_count: int = FINISHED_TASK_RETENTION_COUNT
    signal_stream_maxlen: int = SIGNAL_STREAM_MAXLEN
    event_stream_maxlen: int = EVENT_STREAM_MAXLEN
    signal_retention_seconds: int = SIGNAL_RETENTION_SECONDS
    event_retention_seconds: int = EVENT_RETENTION_SECONDS
    staged_pattern_limit: int = STAGED_PATTERN_LIMIT
    staged_pattern_retention_seconds: int = STAGED_PATTERN_RETENTION_SECONDS
    agent_active_seconds: int = AGENT_ACTIVE_SECONDS
    auth_failure_limit: int = AUTH_FAILURE_LIMIT
    auth_failure_window: int = AUTH_FAILURE_WINDOW

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "key_prefix":
                if not value or any(c in value for c in "{}: *"):
                    raise ValueError(f"key_prefix {value!r} must be non-empty without '{{', '}}', ':', '*' or spaces")
            elif not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, environ=None) -> "Config":
        """Build a config from ``EMPATHY_<FIELD>`` variables; bad values raise ``ValueError`` naming the variable."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = f"EMPATHY_{f.name.upper()}"
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            if f.name == "key_prefix":
                values[f.name] = raw
                continue
            try:
                values[f.name] = float(raw) if f.type == "float" else int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"bad EMPATHY_* setting: {exc}") from None

"""The only module that builds Redis key names.

Layout (``P`` is the configured prefix, ``T`` a team id)::

    P:{teams:N}:teams                      ZSET  team -> first seen (ms); one shard of the team index
    P:{team:T}:events                      STREAM domain events (capped), what the dashboard relays
    P:{team:T}:mem:<agent>:<key>           STRING JSON working memory of one agent (TTL)
    P:{team:T}:agents                      HASH  agent -> JSON {capabilities, registered_at}
    P:{team:T}:agents:seen                 ZSET  agent -> last heartbeat (ms)
    P:{team:T}:agent:<agent>:leases        SET   task ids the agent holds
    P:{team:T}:seq                         STRING counter, FIFO order within a priority
    P:{team:T}:task:<id>                   HASH  task record, and its lease history (fields log_n, log:<n>)
    P:{team:T}:task:<id>:log               LIST  lease history of a task added before the history moved
                                                 into the hash (read, written and expired for those only)
    P:{team:T}:tasks:pending               ZSET  every pending task (score: priority, then FIFO)
    P:{team:T}:tasks:pending:<type>        ZSET  pending tasks of one type (same score)
    P:{team:T}:tasks:leased                ZSET  task -> lease deadline (ms)
    P:{team:T}:tasks:completed             ZSET  task -> completion time (ms)
    P:{team:T}:tasks:failed                ZSET  task -> failure time (ms)
    P:{team:T}:results                     HASH  exact counters (total_completed, agent:<a>, type:<t>, ...)
    P:{team:T}:signals                     STREAM broadcast signals of the team (capped)
    P:{team:T}:signals:seq                 STRING counter, orders signals across the team's streams
    P:{team:T}:inbox:<agent>               STREAM signals targeted at one agent (capped)
    P:{team:T}:cursors:<agent>             HASH  <stream>|<type filter> -> last stream id received
    P:{team:T}:sessions                    ZSET  session -> last activity (ms)
    P:{team:T}:session:<id>                HASH  purpose, created_at, created_by
    P:{team:T}:session:<id>:agents         SET   participants
    P:{team:T}:session:<id>:context        HASH  key -> JSON shared context
    P:{team:T}:staged                      HASH  pattern id -> JSON staged pattern
    P:{team:T}:staged:order                ZSET  pattern id -> staged time (ms)
    P:{team:T}:decision:<pattern>          STRING JSON promote/reject decision (TTL)
    P:{team:T}:lock:pattern:<pattern>      STRING holder of a staged pattern's review lock (PX expiry)
    P:{team:T}:state:<user>:<session>      STRING JSON collaboration state (TTL)
    P:{team:T}:conflict:<id>               STRING JSON conflict context (TTL)
    P:{team:T}:scratch:<name>              STRING tools' own keys (the benchmark's raw SET/GET)
    P:{client:C}:failures:<what>           STRING failed attempts of one client (e.g. bad tokens), EX window

Every team key carries the hash tag ``{team:T}``, so all keys one operation touches live in one
Redis Cluster slot. The team index is sharded over ``TEAM_INDEX_SHARDS`` keys (``team_index_keys``):
shard ``i``'s tag hashes into the ``i``-th of as many equal ranges of cluster slots, and a team is
listed in the shard of its own slot's range (``team_index_shard``), so no one slot is needed by every
team and, on a cluster whose masters serve contiguous slot ranges, a team's entry usually lives on the
master that holds its data. Lua scripts derive per-task and per-type keys from :meth:`TeamKeys.base`
(passed in ARGV); such keys share the tag, so scripts stay single-slot.
"""

from __future__ import annotations

import hashlib
import re

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .exceptions import InvalidInputError

#: Ids of agents, teams, tasks, sessions, patterns, memory keys, task and signal types.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def validate_id(value, what: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidInputError` saying why."""
    if type(value) is str and ID_PATTERN.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    raise InvalidInputError(
        f"{what} {value[:140]!r} is invalid: use 1-128 characters from A-Z a-z 0-9 _ . -, "
        "starting with a letter or digit"
    )


class TeamKeys:
    """Key names of one team. Cheap to build; cache one per team."""

    __slots__ = ("team", "base", "events")

    def __init__(self, prefix: str, team: str):
        self.team = validate_id(team, "team id")
        self.base = f"{prefix}:{{team:{team}}}:"
        self.events = self.base + "events"

    # fixed keys
    @property
    def agents(self):
        return self.base + "agents"

    @property
    def agents_seen(self):
        return self.base + "agents:seen"

    @property
    def seq(self):
        return self.base + "seq"

    @property
    def pending(self):
        return self.base + "tasks:pending"

    @property
    def leased(self):
        return self.base + "tasks:leased"

    @property
    def completed(self):
        return self.base + "tasks:completed"

    @property
    def failed(self):
        return self.base + "tasks:failed"

    @property
    def results(self):
        return self.base + "results"

    @property
    def signals(self):
        return self.base + "signals"

    @property
    def signal_seq(self):
        return self.base + "signals:seq"

    @property
    def sessions(self):
        return self.base + "sessions"

    @property
    def staged(self):
        return self.base + "staged"

    @property
    def staged_order(self):
        return self.base + "staged:order"

    # keys per object (ids already validated by the caller)
    def memory(self, agent_id: str, key: str) -> str:
        return f"{self.base}mem:{agent_id}:{key}"

    def agent_leases(self, agent_id: str) -> str:
        return f"{self.base}agent:{agent_id}:leases"

    def task(self, task_id: str) -> str:
        return f"{self.base}task:{task_id}"

    def task_log(self, task_id: str) -> str:
        """The old-format history list (tasks added before the history moved into the task hash)."""
        return f"{self.base}task:{task_id}:log"

    def pending_of(self, task_type: str) -> str:
        return f"{self.base}tasks:pending:{task_type}"

    def inbox(self, agent_id: str) -> str:
        return f"{self.base}inbox:{agent_id}"

    def cursors(self, agent_id: str) -> str:
        return f"{self.base}cursors:{agent_id}"

    def session(self, session_id: str) -> str:
        return f"{self.base}session:{session_id}"

    def session_agents(self, session_id: str) -> str:
        return f"{self.base}session:{session_id}:agents"

    def session_context(self, session_id: str) -> str:
        return f"{self.base}session:{session_id}:context"

    def decision(self, pattern_id: str) -> str:
        return f"{self.base}decision:{pattern_id}"

    def pattern_lock(self, pattern_id: str) -> str:
        return f"{self.base}lock:pattern:{pattern_id}"

    def state(self, user_id: str, session_id: str) -> str:
        return f"{self.base}state:{user_id}:{session_id}"

    def conflict(self, conflict_id: str) -> str:
        return f"{self.base}conflict:{conflict_id}"

    def scratch(self, name: str) -> str:
        return f"{self.base}scratch:{name}"

    @property
    def match_all(self) -> str:
        """A SCAN MATCH pattern for every key of the team (glob characters escaped)."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.base) + "*"


def failures_key(prefix: str, what: str, client: str) -> str:
    """Failed attempts of one client (an IP address; anything else is hashed) at ``what`` (e.g. ``token``)."""
    if not _CLIENT.fullmatch(client):
        client = hashlib.sha256(client.encode()).hexdigest()[:32]
    return f"{prefix}:{{client:{client}}}:failures:{validate_id(what, 'what')}"


_CLIENT = re.compile(r"[0-9A-Fa-f.:]{1,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def token_revocations_channel(prefix: str) -> str:
    """The pub/sub channel on which revoked tokens' hashes are announced (space-separated), so that
    processes holding their credentials locally drop them at once."""
    return f"{prefix}:token-revocations"


def token_cache_key(prefix: str, token_hash: str) -> str:
    """The cached credentials of an agent token, by the token's SHA-256 (hex); its own slot."""
    if not _DIGEST.fullmatch(token_hash):
        raise ValueError("a token hash is 64 lower-case hex digits")
    return f"{prefix}:{{token:{token_hash}}}:credentials"


#: Keys the team index is sharded over (changing it orphans the entries of the old shards).
TEAM_INDEX_SHARDS = 16


def _index_tag(shard: int) -> str:
    """The first ``teams:<n>`` whose cluster slot falls in the ``shard``-th range of slots."""
    n = 0
    while key_slot(f"teams:{n}".encode()) * TEAM_INDEX_SHARDS // REDIS_CLUSTER_HASH_SLOTS != shard:
        n += 1
    return f"teams:{n}"


_INDEX_TAGS = tuple(_index_tag(i) for i in range(TEAM_INDEX_SHARDS))


def team_index_keys(prefix: str) -> tuple[str, ...]:
    """The shards of the team index, in shard order."""
    return tuple(f"{prefix}:{{{tag}}}:teams" for tag in _INDEX_TAGS)


def team_index_shard(team: str) -> int:
    """The shard a team is listed in: the one whose slot range holds the team's own slot."""
    return key_slot(f"team:{team}".encode()) * TEAM_INDEX_SHARDS // REDIS_CLUSTER_HASH_SLOTS

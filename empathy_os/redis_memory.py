"""``RedisShortTermMemory``: the one class that talks to Redis, and how to get one.

Mock mode is this same class over ``fakeredis`` (with ``lupa`` running the same Lua scripts),
so mock and real Redis share one code path. Every state change is one EVALSHA; reads are
plain commands (a pipeline when several keys are read together).
"""

from __future__ import annotations

import logging
import os
import time

import redis
from redis.exceptions import NoScriptError, ResponseError

from . import defaults
from .codec import decode_json, encode_json, ms_to_seconds, positive_seconds
from .defaults import Config
from .exceptions import InvalidInputError, MemoryUnavailableError
from . import team_index
from .connection import UNAVAILABLE, _shared_mock_server, client_from_url, redact_url
from .overview import read_overview
from .keys import TeamKeys, token_cache_key, token_revocations_channel, validate_id
from .ops import Pipe, Read, Run, op, read
from .patterns import (
    create_conflict_context,
    get_staged_patterns,
    promote_pattern,
    reject_pattern,
    resolve_conflict,
    stage_pattern,
)
from .scripts import SCRIPTS, translate_error
from .tiers import AccessTier, AgentCredentials

log = logging.getLogger("empathy_os")

#: Where :func:`get_redis_memory` looks when no REDIS_URL is set.
LOCAL_REDIS_URL = "redis://localhost:6379/0"


class RedisShortTermMemory:
    """Short-term memory of agent teams on Redis (or on fakeredis in mock mode).

    Pass ``url`` (or ``host``/``port``), a ready ``client`` (created with ``decode_responses=True``),
    or ``use_mock=True``. Every operation takes the caller's :class:`AgentCredentials` first.
    """

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | None = None,
                 use_mock: bool = False, client=None, config: Config | None = None):
        self.config = config or Config.from_env()
        if client is None and use_mock:
            import fakeredis

            client = fakeredis.FakeRedis(server=_shared_mock_server(), decode_responses=True)
        if client is None:
            url = url or f"redis://{host or 'localhost'}:{port or 6379}/0"
            client = client_from_url(url)
        self.client = client
        self.url = redact_url(url) if url else None
        self.mode = self._detect_mode(client)
        self._evalsha = client.evalsha
        self._teams: dict[str, TeamKeys] = {}
        self._known_teams: set[str] = set()

    @staticmethod
    def _detect_mode(client) -> str:
        if type(client).__module__.startswith("fakeredis"):
            return "mock"
        if type(client).__name__ == "RedisCluster":
            return "cluster"
        return "redis"

    def __repr__(self):
        return f"<RedisShortTermMemory mode={self.mode} url={self.url}>"

    @property
    def aio(self):
        """The asyncio twin of this memory (:class:`empathy_os.aio.AsyncRedisShortTermMemory`): same
        server, config and scripts, for code running in an event loop. Made once."""
        twin = self.__dict__.get("_aio")
        if twin is None:
            from .aio import AsyncRedisShortTermMemory

            twin = self._aio = AsyncRedisShortTermMemory(self)
        return twin

    # -- plumbing ---------------------------------------------------------------------------

    def team(self, team_id: str) -> TeamKeys:
        """The key names of a team (validated once, cached)."""
        keys = self._teams.get(team_id)
        if keys is None:
            keys = self._teams[team_id] = TeamKeys(self.config.key_prefix, team_id)
        return keys

    def run(self, script: str, team: TeamKeys, keys=(), args=()):
        """Run one script for a team: the single round trip behind every state change."""
        if team.team not in self._known_teams:
            self._register_team(team.team)
        code = SCRIPTS[script]
        try:
            try:
                return self._evalsha(code.sha, len(keys) + 1, team.events, *keys,
                                     team.team, self._event_limits(), team.base, *args)
            except NoScriptError:  # first use on this server (or after a restart / SCRIPT FLUSH)
                self._known_teams.clear()  # a restarted Redis without persistence lost the team index too
                self._register_team(team.team)
                self._load_script(code.source, team)
                return self._evalsha(code.sha, len(keys) + 1, team.events, *keys,
                                     team.team, self._event_limits(), team.base, *args)
        except ResponseError as exc:
            raise translate_error(exc) from None
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from None

    def _load_script(self, source: str, team: TeamKeys) -> None:
        """Load a script on the server that runs the team's scripts. (A cluster client would send
        SCRIPT LOAD to every master, so one master down would stop the teams of all the others.)"""
        if self.mode == "cluster":
            node = self.client.get_node_from_key(team.events)
            self.client.execute_command("SCRIPT LOAD", source, target_nodes=node)
        else:
            self.client.script_load(source)

    def _event_limits(self) -> str:
        """The events stream's cap and age limit, as every script reads them (ARGV[2]); the config is
        frozen, so the string is made once."""
        limits = self.__dict__.get("_event_limits_arg")
        if limits is None:
            limits = self._event_limits_arg = f"{self.config.event_stream_maxlen} {self.config.event_retention_seconds}"
        return limits

    def read(self, fn, *args, **kwargs):
        """Call a read command (or execute a pipeline), turning connection failures into one exception."""
        try:
            return fn(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc) -> MemoryUnavailableError:
        self._known_teams.clear()  # Redis may come back empty: write the team index again on next use
        where = self.url or "Redis"
        return MemoryUnavailableError(f"{where} did not answer ({type(exc).__name__}: {exc}); retry later")

    def _register_team(self, team_id: str) -> None:
        # The team index (team_index.py) is written apart from team data, once per process and team.
        team_index.register(self, team_id)
        self._known_teams.add(team_id)

    def encode(self, value, what="value") -> str:
        return encode_json(value, self.config.max_value_bytes, what)

    def ping(self) -> bool:
        """True when the server (real or mock) answers."""
        try:
            return bool(self.client.ping())
        except UNAVAILABLE:
            return False

    def list_teams(self) -> list[str]:
        """Every team that has written anything, oldest first (on a cluster with a master down, the
        teams listed on the others: see :func:`empathy_os.team_index.read`)."""
        return team_index.read(self).teams

    # -- working memory -----------------------------------------------------------------------

    @op
    def stash(self, credentials: AgentCredentials, key: str, value, ttl: float | None = None) -> None:
        """Store ``value`` (JSON data) under the caller's ``key`` for ``ttl`` seconds (default 1 hour)."""
        credentials.require(AccessTier.CONTRIBUTOR, "stash")
        validate_id(key, "key")
        ttl = self.config.working_memory_ttl if ttl is None else positive_seconds(ttl, "ttl")
        team = self.team(credentials.team_id)
        agent = credentials.agent_id
        yield Run("put", team, (team.memory(agent, key),),
                  (self.encode(value), int(max(1, round(ttl))), "", "memory.stashed", "agent", agent, "key", key))

    @op
    def retrieve(self, credentials: AgentCredentials, key: str, agent_id: str | None = None):
        """The value the caller (or ``agent_id``) stashed under ``key``, or None."""
        validate_id(key, "key")
        owner = credentials.agent_id if agent_id is None else validate_id(agent_id, "agent id")
        raw = yield read("get", self.team(credentials.team_id).memory(owner, key))
        return None if raw is None else decode_json(raw)

    @op
    def forget(self, credentials: AgentCredentials, key: str) -> bool:
        """Delete one of the caller's own keys. True if it existed."""
        credentials.require(AccessTier.CONTRIBUTOR, "forget")
        validate_id(key, "key")
        team = self.team(credentials.team_id)
        agent = credentials.agent_id
        return bool((yield Run("delete", team, (team.memory(agent, key),),
                               ("memory.forgotten", "agent", agent, "key", key))))

    # -- signals --------------------------------------------------------------------------------

    @op
    def send_signal(self, credentials: AgentCredentials, signal_type: str, data=None,
                    target_agent: str | None = None) -> str:
        """Send a signal to ``target_agent``'s inbox, or to the whole team when it is None.

        Returns the signal's id. Signals are appended to streams: none is ever overwritten.
        """
        credentials.require(AccessTier.CONTRIBUTOR, "send a signal")
        validate_id(signal_type, "signal type")
        team = self.team(credentials.team_id)
        if target_agent is None:
            stream, target = team.signals, ""
        else:
            stream, target = team.inbox(validate_id(target_agent, "target agent")), target_agent
        payload = self.encode({} if data is None else data, "signal data")
        return (yield Run("signal_send", team, (stream, team.signal_seq),
                          (credentials.agent_id, signal_type, payload, target, self.config.signal_stream_maxlen,
                           self.config.signal_retention_seconds)))

    @op
    def receive_signals(self, credentials: AgentCredentials, signal_type: str | None = None, *,
                        wait: float | None = None, count: int = 100) -> list[dict]:
        """Signals for the caller (targeted and broadcast) it has not received yet, oldest first.

        Each is a dict with ``id``, ``sender``, ``signal_type``, ``data``, ``target`` (None for a
        broadcast), ``sent_at`` (seconds since the epoch) and ``seq`` (the team's sending order).
        With ``signal_type``, only that type is returned, and signals of other types stay unread for
        other filters. With ``wait`` seconds, block until at least one signal arrives or time is up.
        """
        want = "" if signal_type is None else validate_id(signal_type, "signal type")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise InvalidInputError(f"count must be an integer from 1 to 10000, got {count!r}")
        team = self.team(credentials.team_id)
        keys = (team.inbox(credentials.agent_id), team.signals, team.cursors(credentials.agent_id))
        deadline = None if not wait else time.monotonic() + positive_seconds(wait, "wait")
        while True:
            out = yield Run("signal_receive", team, keys, (want, count, defaults.SIGNAL_SCAN_LIMIT))
            signals = [self._signal(out[i], out[i + 1]) for i in range(2, len(out), 2)]
            if signals or deadline is None:
                if len(signals) > 1:  # merge the inbox and the broadcast stream in sending order
                    signals.sort(key=_by_seq)
                return signals
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # Sleep on the two streams from the cursors just returned: nothing sent after them is missed.
            # One blocking XREAD lasts at most BLOCK_SLICE_SECONDS (under the client's socket timeout);
            # the loop goes on until the wait is over. (The asyncio twin blocks on its own connection.)
            block = min(remaining, defaults.BLOCK_SLICE_SECONDS)
            yield Read("xread", ({keys[0]: out[0] or "0-0", keys[1]: out[1] or "0-0"},),
                       {"count": 1, "block": max(1, int(block * 1000))})

    @staticmethod
    def _signal(stream_id: str, fields) -> dict:
        f = dict(zip(fields[::2], fields[1::2]))
        return {
            "id": stream_id,
            "sender": f.get("sender"),
            "signal_type": f.get("signal_type"),
            "data": decode_json(f.get("data")),
            "target": f.get("target") or None,
            "sent_at": ms_to_seconds(f.get("sent_at")),
            "seq": int(f.get("seq") or 0),
        }

    # -- collaboration state ------------------------------------------------------------------------

    @op
    def persist_state(self, credentials: AgentCredentials, session_id: str, state: dict,
                      ttl: float | None = None) -> None:
        """Save the caller's collaboration state for ``session_id``."""
        credentials.require(AccessTier.CONTRIBUTOR, "persist collaboration state")
        validate_id(session_id, "session id")
        ttl = self.config.collaboration_state_ttl if ttl is None else positive_seconds(ttl, "ttl")
        team = self.team(credentials.team_id)
        agent = credentials.agent_id
        yield Run("put", team, (team.state(agent, session_id),),
                  (self.encode(state, "collaboration state"), int(max(1, round(ttl))), "",
                   "state.persisted", "agent", agent, "session", session_id))

    @op
    def restore_state(self, credentials: AgentCredentials, session_id: str) -> dict | None:
        """The caller's collaboration state saved for ``session_id``, or None."""
        validate_id(session_id, "session id")
        team = self.team(credentials.team_id)
        return decode_json((yield read("get", team.state(credentials.agent_id, session_id))))

    # -- patterns and conflicts (see patterns.py) ------------------------------------------------------

    # The operation's own generator as the method (one generator per call, not one wrapping another).
    stage_pattern = op(stage_pattern.op)

    @op
    def get_staged_patterns(self, credentials, limit: int = 1000):
        return (yield from get_staged_patterns.op(self, credentials, limit))

    def promote_pattern(self, credentials, pattern_id: str, note: str = ""):
        return promote_pattern(self, credentials, pattern_id, note)

    def reject_pattern(self, credentials, pattern_id: str, reason: str):
        return reject_pattern(self, credentials, pattern_id, reason)

    def create_conflict_context(self, credentials, conflict_id: str, positions: dict, **details):
        return create_conflict_context(self, credentials, conflict_id, positions, **details)

    def resolve_conflict(self, credentials, conflict_id: str, resolution):
        return resolve_conflict(self, credentials, conflict_id, resolution)

    # -- the credentials cache of agent tokens (the HTTP API's bearer tokens) -----------------------
    # The token table lives in the site's database; a verified token's credentials are kept here for a
    # short TTL so a request needs no database round trip. Revoking writes a tombstone (longer than the
    # TTL) and caching is SET NX, so a request that read the database just before a revocation cannot
    # cache the revoked token afterwards.

    @op
    def cached_credentials(self, token_hash: str) -> AgentCredentials | None:
        """The cached credentials of a token (by its SHA-256), or None (not cached, or revoked)."""
        raw = yield read("get", token_cache_key(self.config.key_prefix, token_hash))
        if raw is None or raw == _REVOKED:
            return None
        data = decode_json(raw)
        return AgentCredentials(data["agent_id"], AccessTier(data["tier"]), data["team_id"])

    @op
    def cache_credentials(self, token_hash: str, credentials: AgentCredentials, ttl: int) -> bool:
        """Cache a verified token's credentials for ``ttl`` seconds (one SET NX EX); False when the
        token was revoked lately (or is cached already)."""
        record = encode_json({"agent_id": credentials.agent_id, "tier": int(credentials.tier),
                              "team_id": credentials.team_id}, self.config.max_value_bytes, "credentials")
        return bool((yield read("set", token_cache_key(self.config.key_prefix, token_hash), record,
                                ex=int(ttl), nx=True)))

    @op
    def revoke_cached_credentials(self, token_hashes, ttl: int) -> None:
        """Replace the cached credentials of these tokens by a tombstone for ``2 * ttl`` seconds, then
        announce them on the revocations channel (processes that keep credentials locally, see
        ``empathy_os.local_credentials``, drop them on that message)."""
        token_hashes = list(token_hashes)
        keys = [token_cache_key(self.config.key_prefix, h) for h in token_hashes]
        if keys:
            yield Pipe(tuple(("set", (key, _REVOKED), {"ex": 2 * int(ttl)}) for key in keys))
            # A second round trip: a cluster pipeline refuses PUBLISH. Revocation is rare; the tombstones
            # (the state) are written in the first.
            yield read("publish", token_revocations_channel(self.config.key_prefix), " ".join(token_hashes))

    # -- events and stats -----------------------------------------------------------------------------

    def read_events(self, team_id: str, after: str = "0-0", count: int = 100) -> list[dict]:
        """Domain events of a team after the stream id ``after`` (exclusive), oldest first."""
        entries = self.read(self.client.xrange, self.team(team_id).events, f"({after}", "+", count=count)
        return [dict(fields, id=entry_id) for entry_id, fields in entries]

    def get_stats(self) -> dict:
        """``mode``, ``keys`` (keys in the database), ``memory_used``, ``teams``, and counts per kind of
        data summed over the teams (one read: :func:`empathy_os.overview.read_overview`)."""
        return read_overview(self)["stats"]

    def _every_master(self) -> dict:
        """Where server-wide commands go: a cluster client sends them to one node unless told to ask
        every master (each holds only its slots' keys)."""
        return {"target_nodes": self.client.PRIMARIES} if self.mode == "cluster" else {}

    def _memory_info(self) -> list[dict]:
        """``INFO memory`` of each master (one in plain mode; a cluster answers per node)."""
        info = self.read(self.client.info, "memory", **self._every_master())
        return [info] if "used_memory" in info else [n for n in info.values() if isinstance(n, dict)]

    def get_retention_usage(self) -> dict:
        """How full the bounded structures are, for gauges against the config's limits.

        ``used_memory`` and ``maxmemory`` in bytes (None in mock mode; ``maxmemory`` 0 when unset),
        and ``teams``: per team, entries in its ``events`` and broadcast ``signals`` streams, its
        longest agent inbox (``inbox_max``), ``staged`` patterns and finished task records
        (``completed``, ``failed``). One read: :func:`empathy_os.overview.read_overview`.
        """
        return read_overview(self)["usage"]


_REVOKED = "revoked"


def _by_seq(signal: dict) -> int:
    return signal["seq"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def get_redis_memory(url: str | None = None, *, config: Config | None = None, remote: bool = True):
    """The memory to use, found automatically, with one log line saying which.

    0. ``EMPATHY_URL`` (and ``remote``): a client of that site (``empathy_os.client.connect_from_env``),
       which the chapter's classes accept in place of a memory.
    1. ``EMPATHY_REDIS_MOCK=1`` forces mock mode.
    2. ``url`` or ``REDIS_URL``: that server. If it does not answer, :class:`MemoryUnavailableError`
       (agents split between a real Redis and private mocks would be worse than an error).
    3. ``localhost:6379`` if it answers within ``PROBE_TIMEOUT_SECONDS``.
    4. Otherwise mock mode (in-process, data lost at exit).
    """
    if remote and url is None and os.environ.get("EMPATHY_URL"):
        from .client import connect_from_env

        return connect_from_env()
    if _env_flag("EMPATHY_REDIS_MOCK"):
        log.info("empathy_os: mock mode (EMPATHY_REDIS_MOCK is set)")
        return RedisShortTermMemory(use_mock=True, config=config)
    url = url or os.environ.get("REDIS_URL") or None
    if url:
        memory = RedisShortTermMemory(url, config=config)
        try:
            memory.client.ping()
        except UNAVAILABLE as exc:
            raise MemoryUnavailableError(
                f"REDIS_URL={redact_url(url)} does not answer ({exc}). Start that Redis, fix REDIS_URL, "
                "or unset it to use localhost:6379 / mock mode (EMPATHY_REDIS_MOCK=1 forces mock)"
            ) from None
        log.info("empathy_os: %s mode at %s", memory.mode, memory.url)
        return memory
    if not local_redis_answers():
        log.info("empathy_os: mock mode (no Redis at %s)", redact_url(LOCAL_REDIS_URL))
        return RedisShortTermMemory(use_mock=True, config=config)
    memory = RedisShortTermMemory(LOCAL_REDIS_URL, config=config)
    log.info("empathy_os: redis mode at %s", memory.url)
    return memory


def local_redis_answers() -> bool:
    """Whether a Redis answers at ``LOCAL_REDIS_URL`` within ``PROBE_TIMEOUT_SECONDS``."""
    probe = redis.Redis.from_url(LOCAL_REDIS_URL, socket_timeout=defaults.PROBE_TIMEOUT_SECONDS,
                                 socket_connect_timeout=defaults.PROBE_TIMEOUT_SECONDS, decode_responses=True)
    try:
        probe.ping()
        return True
    except (UNAVAILABLE + (ResponseError,)):
        return False
    finally:
        probe.close()


def resolve_redis_url() -> str | None:
    """The Redis URL :func:`get_redis_memory` would use, or None for mock mode (no error raised)."""
    if _env_flag("EMPATHY_REDIS_MOCK"):
        return None
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    return LOCAL_REDIS_URL if local_redis_answers() else None


def check_redis_connection(memory: RedisShortTermMemory | None = None) -> bool:
    """True only when a real Redis server answers (the given memory's, or the one
    :func:`get_redis_memory` would pick). Mock mode is never a connection."""
    if memory is not None:
        return memory.mode != "mock" and memory.ping()
    if os.environ.get("EMPATHY_URL"):  # the site's memory, through empathy_os.client
        from .client import site_answers

        return site_answers()
    if _env_flag("EMPATHY_REDIS_MOCK"):
        return False
    url = os.environ.get("REDIS_URL") or LOCAL_REDIS_URL
    try:
        client = client_from_url(url, timeout=defaults.PROBE_TIMEOUT_SECONDS * 4)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (UNAVAILABLE + (ResponseError, MemoryUnavailableError, InvalidInputError)):
        return False

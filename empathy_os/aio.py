"""The asyncio twin of the memory: ``redis.asyncio``, the same Lua scripts, keys and errors.

For code that runs in an event loop (the site's HTTP API): ``await memory.aio.claim_task(...)`` makes
the same EVALSHA as the sync library, on a connection of the loop's own, with no thread in between.
Every operation is the generator the sync class runs (see ``ops.py``), so the two cannot drift.

    amemory = memory.aio                      # one per sync memory (shares its config and team cache)
    coordinator = AsyncAgentCoordinator(amemory, "review_team", credentials)
    task = await coordinator.claim_task("agent-1")

A redis.asyncio connection belongs to the event loop that opened it, so the twin keeps one client per
running loop. A client is closed with its loop (``loop.shutdown_asyncgens()``, which ``asyncio.run``
and asgiref's ``async_to_sync`` both call); a server's loop lives as long as the server. In mock mode
the client is fakeredis's async client on the sync memory's FakeServer: both see the same data.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref

from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.utils import HIREDIS_AVAILABLE

from . import ops, sessions
from .coordinator import AgentCoordinator
from .defaults import ASYNC_MAX_CONNECTIONS
from .local_credentials import LocalCredentials
from .ops import Pipe, Read, Run
from .redis_memory import UNAVAILABLE, RedisShortTermMemory
from .scripts import SCRIPTS, translate_error

#: The memory's operations that have a coroutine twin here (the rest of the memory stays sync).
MEMORY_OPS = ("stash", "retrieve", "forget", "send_signal", "receive_signals", "persist_state", "restore_state",
              "stage_pattern", "get_staged_patterns", "cache_credentials")

_SSL_OPTIONS = ("ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data", "ssl_check_hostname")


def _client_factory(memory: RedisShortTermMemory):
    """A function making a redis.asyncio client for the server of the sync ``memory``."""
    client = memory.client
    if memory.mode == "mock":
        from fakeredis.aioredis import FakeRedis

        server = client.connection_pool.connection_kwargs["server"]
        return lambda: FakeRedis(server=server, decode_responses=True)
    if memory.mode == "cluster":
        from redis.asyncio.cluster import RedisCluster

        node = client.get_default_node()
        kw = _connection_options(node.redis_connection.connection_pool)
        if kw.pop("connection_class", None) is not None:
            kw["ssl"] = True
        return lambda: RedisCluster(host=node.host, port=node.port, max_connections=ASYNC_MAX_CONNECTIONS, **kw)
    import redis.asyncio
    from redis.asyncio.connection import BlockingConnectionPool, UnixDomainSocketConnection

    pool = client.connection_pool
    kw = _connection_options(pool)
    conn = pool.connection_kwargs
    if conn.get("path"):
        kw.update(connection_class=UnixDomainSocketConnection, path=conn["path"])
    else:
        kw.update(host=conn.get("host", "localhost"), port=conn.get("port", 6379))
    # A blocking pool: past ASYNC_MAX_CONNECTIONS busy connections a request waits for one (up to the
    # socket timeout) instead of failing with "Too many connections".
    return lambda: redis.asyncio.Redis.from_pool(BlockingConnectionPool(
        max_connections=ASYNC_MAX_CONNECTIONS, timeout=kw["socket_timeout"] or 5, db=conn.get("db", 0), **kw))


def _connection_options(pool) -> dict:
    conn = pool.connection_kwargs
    kw = dict(decode_responses=True, username=conn.get("username"), password=conn.get("password"),
              socket_timeout=conn.get("socket_timeout"), socket_connect_timeout=conn.get("socket_connect_timeout"))
    if pool.connection_class.__name__ == "SSLConnection":
        from redis.asyncio.connection import SSLConnection

        kw["connection_class"] = SSLConnection
        kw.update({k: conn[k] for k in _SSL_OPTIONS if k in conn})
    return kw


async def _closed_with_loop(client, clients: dict, loop, lane=None):
    """An async generator whose ``finally`` closes ``client`` (and ``lane``) when its loop shuts its
    generators down, and forgets it."""
    try:
        yield
    finally:
        if clients.get(loop, (None,))[0] is client:
            del clients[loop]
        if lane is not None:
            await lane.aclose()
        await client.aclose()


#: Commands up to this size are written straight to the connection's stream writer (redis-py 8.1's
#: ``Connection._writer``): ``send_packed_command`` wraps every write in ``asyncio.wait_for`` when a
#: socket timeout is set, which makes a task and costs a turn of the loop per command (40 us of an
#: HTTP claim here). One command at a time per connection, so the buffer never nears its high-water
#: mark (64 KiB) and a write never has to wait; larger ones go through ``send_packed_command``.
SMALL_WRITE = 16384


class Lane:
    """The script calls' own connections in one event loop (redis mode): each call takes an idle
    connection (the last one put back), sends its command and reads the reply with redis-py's own
    ``Connection`` (packer, hiredis parser, socket timeout on the read), and puts it back.

    Why not the client: ``Redis.execute_command`` goes through the pool's checkout (a lock, and a
    non-blocking read on the socket to check it is clean), a retry wrapper and the observability
    hooks; on the machine of docs/benchmarks.md that was 50 us of a 190 us EVALSHA. A connection
    that fails or is interrupted mid-command (a reply may still be on its way) is closed, never
    reused (nor sent again: the script may have run), and one the server closed while it was idle is
    not taken; an error reply leaves it clean. At most ``limit`` commands are in flight; one more waits
    for a connection up to the socket timeout, as the client's blocking pool would."""

    def __init__(self, pool, limit: int, wait: float):
        self.pool, self.wait = pool, wait
        # redis-py's own hiredis packer (its sync connections use it; the asyncio one packs in Python)
        self.pack = HiredisRespSerializer().pack if HIREDIS_AVAILABLE else None
        self.idle: list = []
        self.open: set = set()
        self.slots = asyncio.Semaphore(limit)

    async def execute(self, *args):
        if self.slots.locked():
            try:
                await asyncio.wait_for(self.slots.acquire(), self.wait)
            except asyncio.TimeoutError:
                raise RedisConnectionError(f"no free connection to Redis within {self.wait} s") from None
        else:
            await self.slots.acquire()
        try:
            conn = self._idle() or self._new()
            try:
                packed = self.pack(*args) if self.pack else conn.pack_command(*args)
                writer = getattr(conn, "_writer", None) if conn.is_connected else None
                if writer is not None and sum(map(len, packed)) <= SMALL_WRITE:
                    writer.writelines(packed)  # far under the write buffer's high-water mark: never waits
                else:
                    await conn.send_packed_command(packed, check_health=False)
                reply = await conn.read_response()
            except ResponseError:
                self.idle.append(conn)
                raise
            except BaseException:
                self.open.discard(conn)
                await _disconnect_quietly(conn)
                raise
            self.idle.append(conn)
            return reply
        finally:
            self.slots.release()

    def _idle(self):
        """The last connection put back that the server has not closed meanwhile (a restart, a kill, an
        idle timeout: the loop has read its end of stream, no system call needed to see it)."""
        while self.idle:
            conn = self.idle.pop()
            reader = getattr(conn, "_reader", None)
            if reader is not None and not reader.at_eof():
                return conn
            self.open.discard(conn)
            asyncio.get_running_loop().create_task(_disconnect_quietly(conn))
        return None

    def _new(self):
        conn = self.pool.make_connection()  # the pool's class and options: host, auth, TLS, timeouts
        self.open.add(conn)
        return conn

    async def aclose(self) -> None:
        conns, self.open, self.idle = self.open, set(), []
        for conn in conns:
            await _disconnect_quietly(conn)


async def _disconnect_quietly(conn) -> None:
    try:
        await conn.disconnect()
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing a broken connection
        pass


async def _close_quietly(closer) -> None:
    try:
        await closer.aclose()
    except UNAVAILABLE:
        pass


class AsyncRedisShortTermMemory:
    """The asyncio face of a :class:`RedisShortTermMemory` (get it as ``memory.aio``)."""

    def __init__(self, memory: RedisShortTermMemory):
        self.sync = memory
        self.config = memory.config
        self.mode = memory.mode
        self.url = memory.url
        self._make_client = _client_factory(memory)
        self._clients = {}  # event loop -> (client, the generator closing it, cluster start-up task)
        self._local_credentials = weakref.WeakKeyDictionary()  # event loop -> LocalCredentials (not in cluster mode)

    def __repr__(self):
        return f"<AsyncRedisShortTermMemory mode={self.mode} url={self.url}>"

    # the pure parts are the sync memory's own
    def team(self, team_id: str):
        return self.sync.team(team_id)

    def encode(self, value, what="value") -> str:
        return self.sync.encode(value, what)

    _signal = staticmethod(RedisShortTermMemory._signal)

    async def client(self):
        """The client of the running event loop (made on first use in that loop)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = self._make_client()
            lane = None
            if self.mode == "redis":
                pool = client.connection_pool
                lane = Lane(pool, ASYNC_MAX_CONNECTIONS, pool.connection_kwargs.get("socket_timeout") or 5)
            closer = _closed_with_loop(client, self._clients, loop, lane)
            await closer.__anext__()  # registered with the loop: closed by shutdown_asyncgens()
            # A cluster client learns the slots before its first commands: commands sent concurrently
            # by a client that is still discovering them can hit a half-made connection (redis-py 8.1).
            ready = loop.create_task(client.initialize()) if self.mode == "cluster" else None
            entry = self._clients[loop] = (client, closer, ready, lane)
        ready = entry[2]
        if ready is not None and not (ready.done() and ready.exception() is None):
            try:
                await asyncio.shield(ready)
            except BaseException:
                if self._clients.get(loop) is entry:  # the next call tries a fresh client
                    del self._clients[loop]
                    await _close_quietly(entry[1])
                raise
        return entry[0]

    async def cached_credentials(self, token_hash: str):
        """The cached credentials of a token, as the sync memory's, but kept in the process for a few
        seconds while revocations are being heard (``empathy_os.local_credentials``): then a request
        of a known token costs no round trip."""
        local = self._local()
        if local is not None:
            found = local.get(token_hash)
            if found is not None:
                return found
            generation = local.generation
        credentials = await ops.adrive(RedisShortTermMemory.cached_credentials.op(self, token_hash), self)
        if local is not None and credentials is not None:
            local.put(token_hash, credentials, generation)
        return credentials

    def _local(self) -> LocalCredentials | None:
        if self.mode == "cluster":
            return None
        loop = asyncio.get_running_loop()
        local = self._local_credentials.get(loop)
        if local is None or local.task.done():
            local = self._local_credentials[loop] = LocalCredentials(self)
        return local

    async def _known(self, team) -> None:
        # The team index is the sync memory's (written once per process and team, apart from team data).
        if team.team not in self.sync._known_teams:
            await asyncio.to_thread(self.sync._register_team, team.team)

    async def run(self, script: str, team, keys=(), args=()):
        """Run one script for a team: one EVALSHA, as :meth:`RedisShortTermMemory.run`."""
        await self._known(team)
        code = SCRIPTS[script]
        limits = self.sync._event_limits()
        try:
            client = await self.client()
            lane = self._clients[asyncio.get_running_loop()][3]
            execute = client.execute_command if lane is None else lane.execute
            call = ("EVALSHA", code.sha, len(keys) + 1, team.events, *keys, team.team, limits, team.base, *args)
            try:
                return await execute(*call)
            except NoScriptError:
                self.sync._known_teams.clear()
                await self._known(team)
                if self.mode == "cluster":
                    node = client.get_node_from_key(team.events)
                    await client.execute_command("SCRIPT LOAD", code.source, target_nodes=node)
                else:
                    await execute("SCRIPT LOAD", code.source)
                return await execute(*call)
        except ResponseError as exc:
            raise translate_error(exc) from None
        except UNAVAILABLE as exc:
            raise self.sync._unavailable(exc) from None

    async def perform(self, request):
        """Do one request of an operation (see ``ops.py``)."""
        if type(request) is Run:
            return await self.run(request.script, request.team, request.keys, request.args)
        try:
            client = await self.client()
            if type(request) is Read:
                return await getattr(client, request.command)(*request.args, **request.kwargs)
            pipe = client.pipeline(transaction=False)
            for command, args, kwargs in request.calls:
                getattr(pipe, command)(*args, **kwargs)
            return await pipe.execute()
        except UNAVAILABLE as exc:
            raise self.sync._unavailable(exc) from None

    async def ping(self) -> bool:
        try:
            return bool(await (await self.client()).ping())
        except UNAVAILABLE:
            return False

    async def check_connection(self) -> bool:
        """True only when a real Redis answers (as :func:`check_redis_connection`)."""
        return self.mode != "mock" and await self.ping()

    async def get_stats(self) -> dict:
        """The sync memory's stats, in a worker thread: they walk every team (not a per-request path)."""
        return await asyncio.to_thread(self.sync.get_stats)

    async def aclose(self) -> None:
        """Close the running loop's client now (otherwise it closes with its loop)."""
        loop = asyncio.get_running_loop()
        local = self._local_credentials.pop(loop, None)
        if local is not None:
            local.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await local.task
        entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()


ops.async_twin(AsyncRedisShortTermMemory, RedisShortTermMemory, MEMORY_OPS)


class AsyncAgentCoordinator(AgentCoordinator):
    """:class:`AgentCoordinator` over an :class:`AsyncRedisShortTermMemory`: every method is a coroutine."""


ops.async_twin(AsyncAgentCoordinator, AgentCoordinator)


class AsyncTeamSession(sessions.TeamSession):
    """:class:`TeamSession` whose methods are coroutines; ``await session.open()`` creates it if absent
    (construction does no I/O)."""

    _opens = False


ops.async_twin(AsyncTeamSession, sessions.TeamSession)

get_session_info = ops.async_function(sessions.get_session_info)

__all__ = ["AsyncAgentCoordinator", "AsyncRedisShortTermMemory", "AsyncTeamSession", "get_session_info",
           "Pipe", "Read", "Run"]

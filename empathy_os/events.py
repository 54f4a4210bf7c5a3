"""Reading the teams' domain-event streams as a consumer group.

Every state change appends an event to its team's stream in the same round trip (see the Lua
scripts). Relays read those streams as members of one consumer group, so several relays (one per
server process, or ``manage.py relay_events`` processes) share the work and no event is handed to
two of them. An event a relay took but did not acknowledge (it died) is claimed by another after
``claim_idle_ms``.
"""

from __future__ import annotations

import os
import socket
import time

from redis.exceptions import ResponseError

from . import team_index
from .redis_memory import UNAVAILABLE, RedisShortTermMemory

#: In cluster mode reads do not block: an idle reader looks again after this many ms.
CLUSTER_POLL_MS = 50


class EventReader:
    """One member of a consumer group over every team's events stream."""

    def __init__(self, memory: RedisShortTermMemory, group: str = "relay", consumer: str | None = None, *,
                 count: int = 200, teams_refresh_s: float = 2.0, claim_idle_ms: int = 30_000):
        self.memory = memory
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.count = count
        self.teams_refresh_s = teams_refresh_s
        self.claim_idle_ms = claim_idle_ms
        self._streams: dict[str, str] = {}  # events key -> team id
        self._teams_checked = 0.0
        self._claimed_at = 0.0

    def _refresh_teams(self) -> None:
        now = time.monotonic()
        if now - self._teams_checked < self.teams_refresh_s:
            return
        # The teams there at start are read from now on (pages get a fresh snapshot on connect);
        # a team that appears later is read from its first event, or the events it had before it
        # was seen (up to teams_refresh_s) would never reach anybody.
        start = "0" if self._teams_checked else "$"
        self._teams_checked = now
        for team_id in self.memory.list_teams():
            key = self.memory.team(team_id).events
            if key in self._streams:
                continue
            self._create_group(key, start)
            self._streams[key] = team_id

    def _create_group(self, key: str, start: str) -> None:
        try:
            self.memory.client.xgroup_create(key, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, block_ms: int = 1000) -> list[tuple[str, str, dict]]:
        """Up to ``count`` new events as ``(team, event id, fields)``; waits up to ``block_ms`` for one."""
        try:
            self._refresh_teams()
            if not self._streams:
                time.sleep(block_ms / 1000)
                return []
            out = self._claim_abandoned()
            if self.memory.mode == "cluster":
                replies = self._read_each_stream()
                if not replies and not out:
                    time.sleep(min(block_ms, CLUSTER_POLL_MS) / 1000)
            else:
                replies = self.memory.client.xreadgroup(
                    self.group, self.consumer, dict.fromkeys(self._streams, ">"), count=self.count,
                    block=None if out else block_ms) or []
        except UNAVAILABLE as exc:
            raise self.memory._unavailable(exc) from None
        except ResponseError as exc:
            # The stream was deleted (a restarted or flushed Redis, a deleted team): create again.
            # (fakeredis says the key must exist where Redis answers NOGROUP.)
            if "NOGROUP" in str(exc) or "requires the key to exist" in str(exc):
                self._recreate_groups()
                return []
            raise
        for key, entries in replies:
            out += [(self._streams[key], entry_id, fields) for entry_id, fields in entries]
        return out

    def _recreate_groups(self) -> None:
        """Create the group again on the streams known, from the stream's start: all of it was written
        after the loss, and an agent's first change after a Redis restart must reach the dashboards.
        A restarted or flushed Redis may have lost the team index too (until a team writes again), so
        while it is empty every stream known is kept; otherwise a stream whose team left the index
        was deleted with its team (``empathy_os.bench.cleanup``) and is forgotten, not made again."""
        try:
            index = team_index.read(self.memory)
            teams = set(index.teams)
            for key, team_id in list(self._streams.items()):
                if teams and index.complete and team_id not in teams:  # (a master down hides its shards)
                    del self._streams[key]
                else:
                    self._create_group(key, "0")
        except UNAVAILABLE as exc:
            raise self.memory._unavailable(exc) from None

    def _read_each_stream(self) -> list:
        """Cluster mode: one XREADGROUP cannot span slots (a team's stream is in its own), and a
        blocking read would hold up the other teams; so one non-blocking XREADGROUP per stream, in
        one pipeline per master (a master that does not answer holds up its teams only)."""
        replies = self._per_master(
            lambda pipe, key: pipe.xreadgroup(self.group, self.consumer, {key: ">"}, count=self.count))
        return [reply for key, replies in replies for reply in replies or ()]

    def _per_master(self, command) -> list[tuple[str, object]]:
        """``(key, reply)`` of ``command(pipeline, key)`` for each known stream, one pipeline per master
        (cluster mode); the streams of a master that does not answer are left out, unless none answers."""
        client = self.memory.client
        by_node: dict[str, tuple] = {}
        for key in self._streams:
            node = client.get_node_from_key(key)
            by_node.setdefault(node.name, (node, []))[1].append(key)
        out, failure = [], None
        for node, keys in by_node.values():
            pipe = client.get_redis_connection(node).pipeline(transaction=False)
            for key in keys:
                command(pipe, key)
            try:
                out += zip(keys, pipe.execute())
            except UNAVAILABLE as exc:
                failure = exc
        if failure is not None and not out:
            raise failure
        return out

    def _claim_abandoned(self) -> list[tuple[str, str, dict]]:
        now = time.monotonic()
        if now - self._claimed_at < self.claim_idle_ms / 1000:
            return []
        self._claimed_at = now

        def claim(client, key):
            return client.xautoclaim(key, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.count)

        if self.memory.mode == "cluster":
            replies = self._per_master(claim)
        else:
            pipe = self.memory.client.pipeline(transaction=False)
            for key in self._streams:
                claim(pipe, key)
            replies = zip(self._streams, pipe.execute())
        return [(self._streams[key], entry_id, fields)
                for key, reply in replies for entry_id, fields in reply[1] if fields]

    def ack(self, events) -> None:
        """Acknowledge handled events (one XACK per team)."""
        by_key: dict[str, list[str]] = {}
        for team_id, entry_id, _ in events:
            by_key.setdefault(self.memory.team(team_id).events, []).append(entry_id)
        try:
            for key, ids in by_key.items():
                self.memory.client.xack(key, self.group, *ids)
        except UNAVAILABLE as exc:
            raise self.memory._unavailable(exc) from None

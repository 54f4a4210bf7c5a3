"""The team index: which teams have written to the memory, sharded so that no slot is needed by all.

Each team is listed (``ZADD NX``: the time it was first seen) in one of ``TEAM_INDEX_SHARDS`` sorted
sets (``keys.team_index_keys``). The shard is the one its own slot picks (``keys.team_index_shard``);
on a Redis Cluster, the first shard from there that lives on the master holding the team's data, so
that while one master is down the teams of the others still register and are still listed (and a
team whose master holds no shard is listed on the first other master that answers). Reading
the index is one pipeline (one per master on a cluster, where an unreachable master's shards are
left out and the read says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .connection import UNAVAILABLE
from .exceptions import MemoryUnavailableError
from .keys import TEAM_INDEX_SHARDS, team_index_keys, team_index_shard


@dataclass(frozen=True)
class TeamIndex:
    """What a read of the index found: team ids, first seen first, and whether every shard answered."""

    teams: list[str]
    complete: bool = True


def _candidates(memory, team_id: str) -> list[str]:
    """The shards to list ``team_id`` in, best first: the one its slot picks; on a cluster, the first
    from there on the team's own master (a team whose master is down cannot work anyway), or, when
    that master holds no shard, the first on each other master."""
    keys = team_index_keys(memory.config.key_prefix)
    first = team_index_shard(team_id)
    ordered = [keys[(first + i) % TEAM_INDEX_SHARDS] for i in range(TEAM_INDEX_SHARDS)]
    if memory.mode != "cluster":
        return ordered[:1]
    client = memory.client
    home = client.get_node_from_key(memory.team(team_id).events).name
    by_node: dict[str, str] = {}
    for key in ordered:
        by_node.setdefault(client.get_node_from_key(key).name, key)
    return [by_node[home]] if home in by_node else list(by_node.values())


def register(memory, team_id: str) -> None:
    """List ``team_id`` (once; the first time seen is kept)."""
    now = int(time.time() * 1000)
    candidates = _candidates(memory, team_id)
    for i, key in enumerate(candidates):
        try:
            memory.client.zadd(key, {team_id: now}, nx=True)
            return
        except UNAVAILABLE as exc:
            if i == len(candidates) - 1:
                raise memory._unavailable(exc) from None


def _merge(replies, found: dict) -> None:
    for entries in replies:
        for team_id, score in entries:
            if team_id not in found or score < found[team_id]:
                found[team_id] = score


def read(memory) -> TeamIndex:
    """Every team listed, first seen first. Raises :class:`MemoryUnavailableError` when no shard answers."""
    keys = team_index_keys(memory.config.key_prefix)
    found: dict[str, float] = {}
    complete = True
    if memory.mode != "cluster":
        pipe = memory.client.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(key, 0, -1, withscores=True)
        _merge(memory.read(pipe.execute), found)
    else:
        client = memory.client
        by_node: dict[str, tuple] = {}
        for key in keys:
            node = client.get_node_from_key(key)
            by_node.setdefault(node.name, (node, []))[1].append(key)
        answered = 0
        for node, node_keys in by_node.values():
            pipe = client.get_redis_connection(node).pipeline(transaction=False)
            for key in node_keys:
                pipe.zrange(key, 0, -1, withscores=True)
            try:
                _merge(memory.read(pipe.execute), found)
                answered += 1
            except MemoryUnavailableError:
                complete = False
        if not answered:
            raise MemoryUnavailableError(f"{memory.url or 'Redis'}: no master of the team index answered; retry later")
    return TeamIndex(sorted(found, key=lambda team: (found[team], team)), complete)


def forget(memory, team_id: str) -> None:
    """Drop ``team_id`` from the index (from every shard: one pipeline)."""
    pipe = memory.client.pipeline(transaction=False)
    for key in team_index_keys(memory.config.key_prefix):
        pipe.zrem(key, team_id)
    memory.read(pipe.execute)

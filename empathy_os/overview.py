"""Every team's row and the memory's figures in one read, for pages that show all teams at once.

:func:`read_overview` costs a fixed number of round trips, whatever the number of teams:

1. the team index (:func:`empathy_os.team_index.read`: one pipeline; one per master on a cluster);
2. one pipeline of every team's counters, agents and (when asked) recently claimed task ids;
3. one pipeline of the agents' inbox lengths and those tasks' claim times (only when there are any);
4. ``DBSIZE`` (on every master of a cluster);
5. ``INFO memory`` (every master; not in mock mode).
"""

from __future__ import annotations

import time

from . import team_index
from .codec import ms_to_seconds

#: Per-team counts of the stats (names as :meth:`RedisShortTermMemory.get_stats` gives them).
STAT_NAMES = ("agents", "tasks_pending", "tasks_in_progress", "tasks_completed", "tasks_failed",
              "patterns_staged", "sessions", "broadcast_signals")
#: The task indexes whose newest entries ``recent_tasks`` reads (in progress: soonest lease expiry first).
RECENT_STATUSES = ("in_progress", "completed", "failed")
_TASK_FIELDS = ("attempts", "created_at", "claimed_at")


def _team_commands(pipe, t, recent: int) -> None:
    """Queue one team's reads (``_WIDTH`` replies, 3 more with ``recent``)."""
    pipe.hkeys(t.agents).zrange(t.agents_seen, 0, -1, withscores=True)
    pipe.zcard(t.pending).zcard(t.leased).zcard(t.completed).zcard(t.failed)
    pipe.hmget(t.results, "total_completed", "total_failed")
    pipe.hlen(t.staged).zcard(t.staged_order).zcard(t.sessions).xlen(t.signals).xlen(t.events)
    if recent:
        pipe.zrange(t.leased, 0, recent - 1).zrevrange(t.completed, 0, recent - 1).zrevrange(t.failed, 0, recent - 1)


_WIDTH = 12


def _memory_text(mode: str, nodes: list[dict]) -> str:
    if mode == "mock":
        return "n/a (in-process mock)"
    if len(nodes) == 1 and "used_memory_human" in nodes[0]:
        return nodes[0]["used_memory_human"]
    return f"{sum(int(n.get('used_memory', 0)) for n in nodes) / 1048576:.2f}M"


def read_overview(memory, recent_tasks: int = 0, *, teams: list[str] | None = None, server: bool = True) -> dict:
    """Every team (oldest first) with its figures, and the memory's. ``teams``: those teams only (the
    index is not read); ``server=False``: no DBSIZE and INFO (``stats`` then has None for ``keys``,
    ``memory_used``, and ``usage`` for the memory figures).

    Returns ``stats`` (as :meth:`~RedisShortTermMemory.get_stats`), ``usage`` (as
    :meth:`~RedisShortTermMemory.get_retention_usage`), ``complete`` (False when a cluster master
    holding part of the team index did not answer) and ``teams``: one row per team with ``team_id``,
    ``agents`` (registered), ``active_agents`` (seen within ``agent_active_seconds``), ``tasks``
    (count per status), ``completed_total`` and ``failed_total`` (exact counters),
    ``patterns_staged``, ``sessions``, ``broadcast_signals``, ``usage`` (its row of ``usage``) and
    ``recent_tasks``: with ``recent_tasks=n``, the newest ``n`` tasks of each of RECENT_STATUSES as
    dicts of ``attempts``, ``created_at`` and ``claimed_at`` (seconds; None when unset).
    """
    index = team_index.read(memory) if teams is None else team_index.TeamIndex(list(teams))
    client, teams = memory.client, index.teams
    keys = [memory.team(team_id) for team_id in teams]
    pipe = client.pipeline(transaction=False)
    width = _WIDTH + (len(RECENT_STATUSES) if recent_tasks else 0)
    for t in keys:
        _team_commands(pipe, t, recent_tasks)
    replies = memory.read(pipe.execute) if teams else []

    horizon = time.time() - memory.config.agent_active_seconds
    rows, follow = [], client.pipeline(transaction=False)
    followed = 0
    for i, (team_id, t) in enumerate(zip(teams, keys)):
        (agents, seen, pending, leased, completed, failed, (done, lost), staged, staged_order, sessions, signals,
         events, *recent) = replies[i * width:(i + 1) * width]
        seen = dict(seen)
        for agent in agents:
            follow.xlen(t.inbox(agent))
        ids = [task_id for found in recent for task_id in found]
        for task_id in ids:
            follow.hmget(t.task(task_id), *_TASK_FIELDS)
        followed += len(agents) + len(ids)
        rows.append({
            "team_id": team_id, "agents": len(agents),
            "active_agents": sum(1 for a in agents if a in seen and seen[a] / 1000 >= horizon),
            "tasks": {"pending": pending, "in_progress": leased, "completed": completed, "failed": failed},
            "completed_total": int(done or 0), "failed_total": int(lost or 0), "patterns_staged": staged,
            "sessions": sessions, "broadcast_signals": signals,
            "usage": {"events": events, "signals": signals, "staged": staged_order, "completed": completed,
                      "failed": failed, "inbox_max": 0},
            "_agents": len(agents), "_tasks": len(ids),
        })
    more = iter(memory.read(follow.execute) if followed else [])
    for row in rows:
        row["usage"]["inbox_max"] = max([next(more) for _ in range(row.pop("_agents"))], default=0)
        row["recent_tasks"] = [
            {"attempts": int(attempts or 0), "created_at": ms_to_seconds(created), "claimed_at": ms_to_seconds(claimed)}
            for attempts, created, claimed in (next(more) for _ in range(row.pop("_tasks")))
            if attempts is not None or created is not None]  # a task deleted since its id was read

    dbsize = memory.read(client.dbsize, **memory._every_master()) if server else None
    if isinstance(dbsize, dict):  # a cluster client answers per master
        dbsize = sum(dbsize.values())
    nodes = [] if memory.mode == "mock" or not server else memory._memory_info()
    totals = dict.fromkeys(STAT_NAMES, 0)
    for row in rows:
        for name, value in zip(STAT_NAMES, (row["agents"], *row["tasks"].values(), row["patterns_staged"],
                                            row["sessions"], row["broadcast_signals"])):
            totals[name] += value
    stats = {"mode": memory.mode, "keys": dbsize, "memory_used": _memory_text(memory.mode, nodes) if server else None,
             "teams": len(teams), **totals}
    usage = {"used_memory": sum(int(n.get("used_memory", 0)) for n in nodes) if nodes else None,
             "maxmemory": sum(int(n.get("maxmemory", 0)) for n in nodes) if nodes else None,
             "teams": {row["team_id"]: row["usage"] for row in rows}}
    return {"stats": stats, "usage": usage, "teams": rows, "complete": index.complete}

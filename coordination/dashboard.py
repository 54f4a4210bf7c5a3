"""What the team pages show, read through the library and rendered as partials.

The page views and the ``TeamConsumer`` both render through :func:`render_parts`, so a partial is
the same on first load and on every live update. Nothing here talks to Redis directly: every read
is an ``empathy_os`` call. Everything is synchronous (consumers call it in a worker thread).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections import deque
from datetime import datetime, timezone

from django.template.loader import render_to_string

from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, TeamSession, list_sessions
from empathy_os.coordinator import TASK_STATUSES
from empathy_os.keys import validate_id

from .access import human_agent_id

#: Tasks shown per column of the board (the column says how many there are in all). The finished
#: columns show the newest few: every live update of a column goes to every open dashboard, and its
#: size is most of an update's cost (bytes written to each WebSocket).
COLUMN_LIMITS = {"pending": 50, "in_progress": 50, "completed": 20, "failed": 20}
#: Signals shown in the feed.
FEED_LIMIT = 50
#: Sessions shown (most recently active first).
SESSION_LIMIT = 20
#: An agent seen within this many seconds (but not within ``agent_active_seconds``) is idle; older is gone.
IDLE_SECONDS = 600
#: Shared context values longer than this (as JSON) are cut in the page.
VALUE_PREVIEW_CHARS = 2000
#: The feed looks back over growing windows of the events stream (seconds) until it has enough signals.
FEED_WINDOWS = (60, 600, 3600, 6 * 3600, 24 * 3600)
#: Events read per call while scanning a window.
EVENT_PAGE = 500

COLUMN_TITLES = {"pending": "Pending", "in_progress": "In progress", "completed": "Completed", "failed": "Failed"}
COLUMN_ORDER = {"pending": "highest priority first", "in_progress": "soonest lease expiry first",
                "completed": "newest first", "failed": "newest first"}

#: Partial name -> template. A column partial is named after its DOM id (``tasks-<status>``).
TEMPLATES = {
    "agents": "coordination/partials/agent_list.html",
    **{f"tasks-{status}": "coordination/partials/task_column.html" for status in TASK_STATUSES},
    "signals": "coordination/partials/signal_feed.html",
    "sessions": "coordination/partials/session_list.html",
    "counters": "coordination/partials/team_counters.html",
}
ALL_PARTS = tuple(TEMPLATES)
BOARD = tuple(f"tasks-{status}" for status in TASK_STATUSES)

#: The lists shown newest first whose newest item an event adds: the finished columns (a task
#: finished) and the signal feed (a signal was sent). When the event's item is still the newest,
#: the update is that item alone, put at the top of the list (``hx-swap-oob="afterbegin:..."``),
#: and the list's header, instead of the whole list: 1.2 KB instead of 8.4 KB for a completion
#: with 20 tasks in the column, sent to every open dashboard. The page keeps such a list to its
#: ``data-limit`` and drops an item repeated further down (static/js/dashboard.js).
ENTRY_TEMPLATES = {
    "tasks-completed": "coordination/partials/task_entry.html",
    "tasks-failed": "coordination/partials/task_entry.html",
    "signals": "coordination/partials/signal_entry.html",
}
FINISHED = ("completed", "failed")

#: Event kind -> the partials it can change (kinds not listed: by prefix, see :func:`parts_for_event`).
EVENT_PARTS = {
    "task.added": ("tasks-pending", "counters"),
    "task.claimed": ("tasks-pending", "tasks-in_progress", "counters", "agents"),
    "task.lease_extended": ("tasks-in_progress",),
    "task.completed": ("tasks-in_progress", "tasks-completed", "counters"),
    "task.requeued": ("tasks-pending", "tasks-in_progress", "counters"),
    "task.failed": ("tasks-pending", "tasks-in_progress", "tasks-failed", "counters"),
    "signal.sent": ("signals",),
}


def is_valid_id(value) -> bool:
    try:
        validate_id(value)
    except ValueError:
        return False
    return True


def parts_for_event(event: dict) -> tuple[str, ...]:
    """The partials to re-render after a relayed event (``event["type"]`` is its kind)."""
    kind = event.get("type", "")
    if kind in EVENT_PARTS:
        return EVENT_PARTS[kind]
    if kind == "agent.heartbeat" and str(event.get("leases", "0")) not in ("", "0"):
        return ("agents", "tasks-in_progress")  # the heartbeat renewed leases: new expiries
    if kind.startswith("agent."):
        return ("agents",)
    if kind.startswith("task."):
        return (*BOARD, "counters")
    if kind.startswith("session."):
        return ("sessions",)
    return ("counters",)


def reader_credentials(user, team_id: str) -> AgentCredentials:
    """Who the page reads as: the person, at the observer tier (a page never writes)."""
    return AgentCredentials(human_agent_id(user), AccessTier.OBSERVER, team_id)


def human_age(seconds: float) -> str:
    """``"12 s ago"``, ``"3 min ago"``, ``"in 40 s"`` (static/js/dashboard.js says the same as time passes)."""
    ahead = seconds < 0
    n = abs(seconds)
    if n < 90:
        text = f"{int(n)} s"
    elif n < 5400:
        text = f"{int(n // 60)} min"
    elif n < 172800:
        text = f"{int(n // 3600)} h"
    else:
        text = f"{int(n // 86400)} d"
    return f"in {text}" if ahead else f"{text} ago"


def moment(ts: float | None, now: float) -> dict | None:
    """What a ``<time>`` element shows for ``ts`` (epoch seconds), as seen at ``now``."""
    if ts is None:
        return None
    return {"ts": f"{ts:.3f}", "age": f"{now - ts:.3f}", "text": human_age(now - ts),
            "iso": datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")}


# -- reads ------------------------------------------------------------------------------------------


def _agent_status(last_seen, now: float, active_seconds: int) -> str:
    if last_seen is None:
        return "gone"
    age = now - last_seen
    if age <= active_seconds:
        return "active"
    return "idle" if age <= IDLE_SECONDS else "gone"


def agents_context(coordinator: AgentCoordinator, now: float) -> dict:
    active_seconds = coordinator.memory.config.agent_active_seconds
    agents = [{**a, "status": _agent_status(a["last_seen"], now, active_seconds),
               "seen": moment(a["last_seen"], now)}
              for a in coordinator.get_agents()]
    return {"agents": agents, "active_seconds": active_seconds, "idle_seconds": IDLE_SECONDS}


def _column(status: str, tasks, total: int, now: float, **extra) -> dict:
    items = [{"task": t, "lease": moment(t.lease_expires_at, now), "finished": moment(t.finished_at, now),
              "created": moment(t.created_at, now)} for t in tasks]
    return {"status": status, "title": COLUMN_TITLES[status], "order": COLUMN_ORDER[status], "items": items,
            "total": max(total, len(items)), "shown": len(items), "limit": COLUMN_LIMITS[status], **extra}


def column_context(coordinator: AgentCoordinator, status: str, total: int, now: float) -> dict:
    tasks = coordinator.list_tasks(status, limit=COLUMN_LIMITS[status]) if total else []
    return _column(status, tasks, total, now)


def finished_entry(coordinator: AgentCoordinator, status: str, total: int, task_id, now: float) -> dict | None:
    """The finished column ``status`` as one entry, ``task_id`` put at its top; None unless that task
    is the column's newest (then the whole column is rendered: the entry would go above newer ones)."""
    newest = coordinator.list_tasks(status, limit=1) if total and task_id else []
    if not newest or newest[0].task_id != task_id:
        return None
    return _column(status, newest, total, now, entry=True, shown=min(total, COLUMN_LIMITS[status]))


def _event_ms(event_id: str) -> int:
    return int(event_id.partition("-")[0])


def _scan_events(memory, team_id: str, start_ms: int, end_ms: int | None, kind: str) -> list[dict]:
    """Events of ``kind`` with ids in [start_ms, end_ms), oldest first, read forward page by page."""
    found, after = [], _after_ms(start_ms)
    while True:
        events = memory.read_events(team_id, after, count=EVENT_PAGE)
        for event in events:
            if end_ms is not None and _event_ms(event["id"]) >= end_ms:
                return found
            if event.get("kind") == kind:
                found.append(event)
        if len(events) < EVENT_PAGE:
            return found
        after = events[-1]["id"]


class _StreamTail:
    """What one team's events stream says, kept up to date incrementally: each call reads only the
    events written since the previous one (``read_new``). One per memory and team (``for_team``);
    renders run in worker threads, hence the lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._after: str | None = None  # id of the last event read

    @classmethod
    def for_team(cls, memory, team_id: str):
        with _tails_lock:
            return _tails.setdefault(memory, {}).setdefault((cls, team_id), cls())

    def read_new(self, memory, team_id: str, kind: str) -> list[dict]:
        """The events of ``kind`` after ``self._after`` (set it first), oldest first."""
        found = []
        while True:
            events = memory.read_events(team_id, self._after, count=EVENT_PAGE)
            found.extend(e for e in events if e.get("kind") == kind)
            if events:
                self._after = events[-1]["id"]
            if len(events) < EVENT_PAGE:
                return found


_tails: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()
_tails_lock = threading.Lock()


def _after_ms(ms: int) -> str:
    """The stream position just before the first event of millisecond ``ms``."""
    return f"{ms - 1}-18446744073709551615"


class SignalFeed(_StreamTail):
    """A team's latest ``FEED_LIMIT`` signals (``signal.sent`` events).

    The library has no "latest signals" read. The first call looks back over growing windows of
    the events stream until it has enough; later calls only read what was written since.
    """

    def __init__(self):
        super().__init__()
        self._signals: deque[dict] = deque(maxlen=FEED_LIMIT)  # oldest first

    def latest(self, memory, team_id: str, now: float) -> list[dict]:
        """Newest first."""
        with self._lock:
            if self._after is None:
                now_ms = int(now * 1000)
                end_ms = now_ms - FEED_WINDOWS[0] * 1000
                self._after = _after_ms(end_ms)
                found = self.read_new(memory, team_id, "signal.sent")
                for window in FEED_WINDOWS[1:]:
                    if len(found) >= FEED_LIMIT:
                        break
                    start_ms = now_ms - window * 1000
                    found = _scan_events(memory, team_id, start_ms, end_ms, "signal.sent") + found
                    end_ms = start_ms
            else:
                found = self.read_new(memory, team_id, "signal.sent")
            self._signals.extend(found)
            return list(reversed(self._signals))


def recent_signals(memory, team_id: str, now: float) -> list[dict]:
    """The team's latest signals (targeted and broadcast), newest first, from its events stream
    (``signal.sent`` events carry the signal id, sender, type and target)."""
    signals = []
    for event in SignalFeed.for_team(memory, team_id).latest(memory, team_id, now):
        # The signal's own id is unique in its stream only (an inbox and the broadcast stream can
        # both hold "<ms>-0"), so the DOM id uses the event's id, unique in the team's events stream.
        signals.append({"id": event.get("signal", ""), "dom_id": event["id"].replace("-", "_"),
                        "sender": event.get("agent", ""),
                        "signal_type": event.get("signal_type", ""), "target": event.get("target") or None,
                        "sent": moment(int(event.get("ts") or _event_ms(event["id"])) / 1000, now)})
    return signals


class Throughput(_StreamTail):
    """Tasks one team completed in the last 60 seconds (``task.completed`` events).

    Scanning the whole last minute on every render cost 15 ms with 2,700 events in it (900 tasks a
    minute), and the counters are re-rendered on every task event of a live dashboard.
    """

    window_ms = 60_000

    def __init__(self):
        super().__init__()
        self._times: deque[int] = deque()  # ms of the completions read, oldest first

    def count(self, memory, team_id: str, now: float) -> int:
        start_ms = int(now * 1000) - self.window_ms
        with self._lock:
            if self._after is None or _event_ms(self._after) < start_ms:
                self._after = _after_ms(start_ms)  # everything read before is too old
            self._times.extend(_event_ms(e["id"]) for e in self.read_new(memory, team_id, "task.completed"))
            while self._times and self._times[0] < start_ms:
                self._times.popleft()
            return len(self._times)


def completions_last_minute(memory, team_id: str, now: float) -> int:
    """Tasks completed in the last 60 seconds (kept per memory and team by :class:`Throughput`)."""
    return Throughput.for_team(memory, team_id).count(memory, team_id, now)


def counters_context(coordinator: AgentCoordinator, counts: dict, now: float) -> dict:
    return {"counts": counts, "throughput": completions_last_minute(coordinator.memory, coordinator.team_id, now)}


def _preview(value) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_PREVIEW_CHARS else text[:VALUE_PREVIEW_CHARS] + "\n…"


def sessions_context(memory, credentials: AgentCredentials) -> dict:
    sessions = []
    for info in list_sessions(memory, credentials.team_id, limit=SESSION_LIMIT):
        # An observer's handle only reads: opening it creates or touches nothing.
        context = TeamSession(memory, info["session_id"], team_id=credentials.team_id,
                              credentials=credentials).get_context()
        sessions.append({**info, "context": [(key, _preview(value)) for key, value in context.items()],
                         "active": moment(info["last_activity"], time.time())})
    return {"sessions": sessions}


def team_context(memory, credentials: AgentCredentials, parts=ALL_PARTS, event: dict | None = None) -> dict:
    """The context of the named partials (keys: ``agents``, ``columns``, ``signals``, ...).

    With the relayed ``event`` that asked for them, a list it added the newest item to is given as
    that entry alone (``columns[status]["entry"]``, ``signal_entry``; see ENTRY_TEMPLATES)."""
    now = time.time()
    event = event or {}
    coordinator = AgentCoordinator(memory, credentials.team_id, credentials)
    ctx: dict = {"team_id": credentials.team_id, "now": now, "feed_limit": FEED_LIMIT}
    counts = coordinator.count_tasks() if any(p in BOARD or p == "counters" for p in parts) else {}
    if "agents" in parts:
        ctx["agents"] = agents_context(coordinator, now)
    ctx["columns"] = {}
    for status in (p.removeprefix("tasks-") for p in parts if p in BOARD):
        entry = None
        if status in FINISHED and event.get("type") in ("task.completed", "task.failed"):
            entry = finished_entry(coordinator, status, counts[status], event.get("task"), now)
        ctx["columns"][status] = entry or column_context(coordinator, status, counts[status], now)
    if "signals" in parts:
        ctx["signals"] = recent_signals(memory, credentials.team_id, now)
        newest = ctx["signals"][0]["dom_id"] if ctx["signals"] else None
        if event.get("type") == "signal.sent" and newest == str(event.get("event_id", "")).replace("-", "_"):
            ctx["signal_entry"] = ctx["signals"][0]
    if "sessions" in parts:
        ctx["sessions"] = sessions_context(memory, credentials)
    if "counters" in parts:
        ctx["counters"] = counters_context(coordinator, counts, now)
    return ctx


def render_parts(memory, credentials: AgentCredentials, parts=ALL_PARTS, extra: dict | None = None,
                 event: dict | None = None) -> list[str]:
    """Render the named partials for one reader (each carries ``hx-swap-oob``); ``event``: the relayed
    event they are rendered for (a list it added an item to may be sent as that entry alone)."""
    ctx = {**team_context(memory, credentials, parts, event), **(extra or {})}
    out = []
    for name in parts:
        if name in BOARD:
            column = ctx["columns"][name.removeprefix("tasks-")]
            template = ENTRY_TEMPLATES[name] if column.get("entry") else TEMPLATES[name]
            out.append(render_to_string(template, {**ctx, "column": column}))
        elif name == "signals" and "signal_entry" in ctx:
            out.append(render_to_string(ENTRY_TEMPLATES[name], ctx))
        else:
            out.append(render_to_string(TEMPLATES[name], ctx))
    return out


def task_detail(memory, credentials: AgentCredentials, task_id: str) -> dict | None:
    """A task with its pretty-printed context and result and its lease history; None if unknown."""
    coordinator = AgentCoordinator(memory, credentials.team_id, credentials)
    task = coordinator.get_task(task_id)
    if task is None:
        return None
    now = time.time()
    history = [{**entry, "when": moment(entry["at"], now)} for entry in coordinator.get_task_history(task_id)]
    return {"task": task, "history": history, "lease": moment(task.lease_expires_at, now),
            "created": moment(task.created_at, now), "claimed": moment(task.claimed_at, now),
            "finished": moment(task.finished_at, now),
            "context_json": json.dumps(task.context, indent=2, ensure_ascii=False, sort_keys=True),
            "result_json": None if task.result is None else json.dumps(task.result, indent=2, ensure_ascii=False,
                                                                          sort_keys=True)}

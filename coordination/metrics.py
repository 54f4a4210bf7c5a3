"""The chapter's Part 6 metrics, measured live, for the metrics page and the Prometheus endpoint.

Five figures:

* **task distribution latency**: one ``add_task`` round trip, measured by the probe;
* **signal round trip**: ``broadcast`` then ``receive_signals`` of that broadcast, by the probe
  (exactly the chapter's measurement);
* **pattern staging latency**: one ``stage_pattern`` round trip, by the probe;
* **coordination latency**: how long real tasks waited between being added and being claimed
  (``claimed_at - created_at``), read from each team's recent tasks;
* **pattern reuse rate**: the share of pattern-library look-ups that found a pattern
  (``patterns.library.reuse_rate``), per team and overall.

The probe runs in a thread of the server process (``manage.py serve`` starts it) every
``PROBE_INTERVAL_SECONDS``. It works in a team of its own (``probe``) under a key prefix of its own
(``<prefix>-probe``), with small retention limits: its writes never show up in the site's team list,
event streams or counters, and its keys stay bounded. Samples are kept in process memory, in capped
rings: each server process reports what it measured itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from time import perf_counter

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import DatabaseError
from django.db.models import Count
from django.template.loader import render_to_string

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    EmpathyError,
    EmpathyOS,
    MemoryUnavailableError,
    RedisShortTermMemory,
    StagedPattern,
)
from empathy_os.bench import nearest_rank
from patterns.models import LibraryLookup, LibraryPattern

from .memory import get_memory

log = logging.getLogger("coordination.metrics")

#: Seconds between two probe rounds.
PROBE_INTERVAL_SECONDS = 5.0
#: Samples kept per series (10 minutes at the default interval).
WINDOW = 120
#: The probe's team, under the probe's own key prefix.
PROBE_TEAM = "probe"
PROBE_AGENT = "probe_agent"
#: Recent tasks per team and status read for the coordination latency.
RECENT_TASKS = 50
#: The channel-layer group of the live metrics pages, told after each probe round.
METRICS_GROUP = "metrics"
#: What the probe thread sends that group (handled by ``MetricsConsumer``).
ROUND_NOTICE = {"type": "metrics.probed"}


@dataclass(frozen=True)
class Metric:
    """One of the chapter's latency figures, with its targets (milliseconds) by memory mode."""

    key: str
    title: str
    definition: str
    targets_ms: dict


#: The chapter's "Expected results" (mock and local Redis columns; a cluster is held to the local one).
LATENCIES = (
    Metric("task_distribution", "Task distribution",
           "One add_task round trip (the probe queues a task every round).",
           {"mock": 1, "redis": 5, "cluster": 5}),
    Metric("signal_round_trip", "Signal round trip",
           "A broadcast, then receive_signals reading it back (the chapter's measurement).",
           {"mock": 1, "redis": 10, "cluster": 10}),
    Metric("pattern_staging", "Pattern staging",
           "One stage_pattern round trip.",
           {"mock": 2, "redis": 10, "cluster": 10}),
    Metric("coordination", "Coordination latency",
           "Real tasks: time from add_task to the claim (claimed_at - created_at), first claims only. "
           "It includes time waiting for a free agent.",
           {"mock": 50, "redis": 50, "cluster": 50}),
)
PROBED = ("task_distribution", "signal_round_trip", "pattern_staging")


class Series:
    """A capped ring of ``(time, value)`` samples, with running count and sum (thread-safe)."""

    def __init__(self, capacity: int = WINDOW):
        self._ring: deque = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0

    def add(self, value: float, at: float | None = None) -> None:
        with self._lock:
            self._ring.append((time.time() if at is None else at, value))
            self.count += 1
            self.total += value

    def samples(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._ring)


def probe_memory_for(memory: RedisShortTermMemory) -> RedisShortTermMemory:
    """A memory over the same connection, under the probe's own prefix and small retention limits."""
    config = replace(memory.config, key_prefix=f"{memory.config.key_prefix}-probe",
                     finished_task_retention_count=32, signal_stream_maxlen=64, event_stream_maxlen=64)
    return RedisShortTermMemory(client=memory.client, config=config)


class RoundNotifier:
    """Tells the live metrics pages (``METRICS_GROUP``) that a probe round ended, from the probe's thread.

    Why not only ``async_to_sync(layer.group_send)``: that runs the send on an event loop of its
    own, which is right for channels-redis but not for the in-memory layer of mock mode, whose
    queues belong to the server's loop and are not thread-safe. So the first metrics page to
    connect ``attach``es the server's loop, and the notice is sent on that loop; without one (no
    page connected in this process) it falls back to ``async_to_sync`` for channels-redis (pages of
    other processes listen) and sends nothing on the in-memory layer (nobody can listen).
    """

    #: Seconds the probe thread waits for the send at most (a stuck loop must not stop the probe).
    TIMEOUT = 5.0

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set = set()  # sends scheduled on a running loop, kept until done

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        target = self.loop if self.loop is not None and self.loop.is_running() else None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if target is None and running is None and isinstance(layer, InMemoryChannelLayer):
            return  # no page of this process has connected, and no other process can listen
        if running is not None and target in (None, running):  # on a loop already: do not block it
            task = running.create_task(layer.group_send(METRICS_GROUP, dict(ROUND_NOTICE)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif target is not None:
            asyncio.run_coroutine_threadsafe(layer.group_send(METRICS_GROUP, dict(ROUND_NOTICE)),
                                             target).result(self.TIMEOUT)
        else:
            async_to_sync(layer.group_send)(METRICS_GROUP, dict(ROUND_NOTICE))


#: Tells this process's metrics pages about each probe round.
NOTIFY = RoundNotifier()


class Probe:
    """Measures the chapter's three round trips every ``interval`` seconds, in a thread.

    Each round queues, claims and completes one task, broadcasts and reads back one signal, and
    re-stages the same pattern id (an owner's overwrite), so the probe's data never grows.
    """

    def __init__(self, memory_getter=get_memory, interval: float = PROBE_INTERVAL_SECONDS, capacity: int = WINDOW,
                 notify=None):
        self.memory_getter = memory_getter
        self.interval = interval
        self.notify = notify or NOTIFY
        self.series = {key: Series(capacity) for key in PROBED}
        self.keys = Series(capacity)
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_run: float | None = None
        self._source = None
        self._probe_memory = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _memory(self) -> tuple[RedisShortTermMemory, RedisShortTermMemory]:
        memory = self.memory_getter()
        if memory is not self._source:  # the site's memory changed (tests): follow it
            self._source, self._probe_memory = memory, probe_memory_for(memory)
        return memory, self._probe_memory

    def process_one(self) -> dict:
        """One round: returns the latencies measured (seconds) and the key count. Raises
        :class:`MemoryUnavailableError` when Redis does not answer (the round is counted as an error)."""
        self.runs += 1
        self.last_run = time.time()
        try:
            measured = self._measure()
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.last_error = None
        now = time.time()
        for key in PROBED:
            self.series[key].add(measured[key], now)
        self.keys.add(measured["keys"], now)
        return measured

    def _measure(self) -> dict:
        memory, pm = self._memory()
        coordinator = AgentCoordinator(pm, PROBE_TEAM)
        agent = EmpathyOS(PROBE_AGENT, pm, AccessTier.CONTRIBUTOR, team_id=PROBE_TEAM)
        task = AgentTask(f"probe_{uuid.uuid4().hex[:12]}", "probe", "metrics probe", priority=5)

        start = perf_counter()
        coordinator.add_task(task)
        distribution = perf_counter() - start
        coordinator.claim_task(PROBE_AGENT, "probe")  # keep the probe's queue empty
        coordinator.complete_task(task.task_id, {"probe": True})

        start = perf_counter()
        coordinator.broadcast("ping", {"timestamp": time.time()})
        coordinator.receive_signals("ping")
        signal = perf_counter() - start

        pattern = StagedPattern("probe_pattern", PROBE_AGENT, "probe", "Probe pattern",
                                description="Staged by the metrics probe every round", confidence=0.5)
        start = perf_counter()
        agent.stage_pattern(pattern)
        staging = perf_counter() - start

        keys = memory.get_stats()["keys"]
        return {"task_distribution": distribution, "signal_round_trip": signal, "pattern_staging": staging,
                "keys": keys}

    def round(self) -> None:
        """One round as the thread runs it: measure, then tell the live pages (a failed round too:
        the pages show the failures). Never raises: an outage is counted, not fatal."""
        try:
            self.process_one()
        except EmpathyError:
            pass  # recorded in errors / last_error; the page shows it
        except Exception:
            log.exception("metrics probe failed")
        try:
            self.notify()
        except Exception:  # the pages miss one round; the next one brings them up to date
            log.warning("could not tell the metrics pages about a probe round", exc_info=True)

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.round()
            stop.wait(self.interval)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Start the probe thread (once per process) and return it."""
        with self._lock:
            if not self.running:
                self._thread = threading.Thread(target=self.run, args=(stop,), name="empathy-metrics-probe",
                                                daemon=True)
                self._thread.start()
            return self._thread


#: This process's probe.
PROBE = Probe()


# -- figures read from the library and the pattern library ---------------------------------------------


def coordination_samples(memory, team_id: str, limit: int = RECENT_TASKS) -> list[tuple[float, float]]:
    """``(claimed_at, seconds waited)`` of the team's recently claimed tasks, oldest claim first.

    Only first claims count (``attempts == 1``): a task claimed again after a lapsed lease waited
    for the lease, not for coordination.
    """
    coordinator = AgentCoordinator(memory, team_id, AgentCredentials("metrics", AccessTier.OBSERVER, team_id))
    samples = []
    for status in ("in_progress", "completed", "failed"):
        for task in coordinator.list_tasks(status, limit):
            if task.attempts == 1 and task.claimed_at and task.created_at:
                samples.append((task.claimed_at, max(0.0, task.claimed_at - task.created_at)))
    samples.sort()
    return samples[-limit:]


def team_figures(memory, team_id: str) -> dict:
    """What the Prometheus endpoint and the page show per team, read through the library."""
    observer = AgentCredentials("metrics", AccessTier.OBSERVER, team_id)
    coordinator = AgentCoordinator(memory, team_id, observer)
    results = coordinator.aggregate_results()
    coordination = coordination_samples(memory, team_id)
    return {
        "team": team_id,
        "tasks": coordinator.count_tasks(),
        "completed_total": results["total_completed"],
        "failed_total": results["total_failed"],
        "agents_active": len(coordinator.get_active_agents()),
        "patterns_staged": len(memory.get_staged_patterns(observer)),
        "coordination": coordination,
        "coordination_last": coordination[-1][1] if coordination else None,
        "coordination_p50": nearest_rank([s for _, s in coordination], 50),
    }


def library_figures() -> dict:
    """Per team and overall: library patterns, look-ups, hits, reuse rate (hits / look-ups)."""
    teams: dict[str, dict] = {}

    def row(team_id):
        return teams.setdefault(team_id, {"team": team_id, "patterns": 0, "lookups": 0, "hits": 0, "rate": None})

    for item in LibraryPattern.objects.values("team_id").annotate(n=Count("id")):
        row(item["team_id"])["patterns"] = item["n"]
    for lookup in LibraryLookup.objects.all():
        r = row(lookup.team_id)
        r["lookups"], r["hits"] = lookup.lookups, lookup.hits
        r["rate"] = lookup.hits / lookup.lookups if lookup.lookups else None
    lookups = sum(r["lookups"] for r in teams.values())
    hits = sum(r["hits"] for r in teams.values())
    return {"teams": dict(sorted(teams.items())), "patterns": sum(r["patterns"] for r in teams.values()),
            "lookups": lookups, "hits": hits, "rate": hits / lookups if lookups else None}


# -- the metrics page ------------------------------------------------------------------------------------


def sparkline(values, target=None, width: int = 240, height: int = 48, pad: float = 3.0) -> dict:
    """Geometry of a small line chart of ``values`` (with a dashed ``target`` line), for inline SVG."""
    top = max([*values, target or 0]) * 1.15 or 1.0
    n = len(values)
    span_x, span_y = width - 2 * pad, height - 2 * pad

    def y(v):
        return height - pad - (v / top) * span_y

    points = [(pad + (i * span_x / (n - 1) if n > 1 else span_x / 2), y(v)) for i, v in enumerate(values)]
    return {"width": width, "height": height,
            "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
            "last": points[-1] if points else None,
            "target_y": f"{y(target):.1f}" if target is not None else None}


def format_ms(ms: float | None) -> str:
    """A latency for people: ``0.42 ms``, ``12.3 ms``, ``1.84 s``; an em dash when unknown."""
    if ms is None:
        return "\u2014"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def format_rate(rate: float | None) -> str:
    return "\u2014" if rate is None else f"{rate:.0%}"


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


def retention_figures(config) -> list[tuple[str, str]]:
    """Why memory stays bounded: the limits this memory works with."""
    return [
        ("Finished task records", f"{format_duration(config.finished_task_retention_seconds)}, at most "
                                  f"{config.finished_task_retention_count:,} per kind and team"),
        ("Signal streams", f"about {config.signal_stream_maxlen:,} entries each, "
                           f"{format_duration(config.signal_retention_seconds)} at most"),
        ("Event streams", f"about {config.event_stream_maxlen:,} entries per team, "
                          f"{format_duration(config.event_retention_seconds)} at most"),
        ("Staged patterns", f"at most {config.staged_pattern_limit:,} per team (more are refused), "
                            f"{format_duration(config.staged_pattern_retention_seconds)} at most"),
        ("Working memory", f"{format_duration(config.working_memory_ttl)} unless a TTL is given"),
        ("Sessions", f"{format_duration(config.session_ttl)} after their last activity"),
        ("Pattern decisions in Redis", format_duration(config.decision_ttl)),
        ("Task lease", f"{format_duration(config.task_lease_seconds)}, at most {config.task_max_attempts} claims"),
    ]


def retention_gauges(config, usage: dict) -> list[dict]:
    """One gauge (``label``, ``value``, ``max``, ``text``) per bounded structure of each team, and Redis's
    memory against ``maxmemory`` when that is set. Stream caps are approximate (whole stream nodes are
    trimmed), so a value may pass its cap a little."""
    gauges = []
    if usage["used_memory"] is not None:
        used, limit = usage["used_memory"], usage["maxmemory"]
        text = f"{used / 1048576:.1f} MiB" + (f" of {limit / 1048576:.0f} MiB" if limit else " (no maxmemory set)")
        gauges.append({"label": "Redis memory", "value": used, "max": limit or None, "text": text})
    limits = (("events", "events stream", config.event_stream_maxlen),
              ("signals", "broadcast signals", config.signal_stream_maxlen),
              ("inbox_max", "longest inbox", config.signal_stream_maxlen),
              ("staged", "staged patterns", config.staged_pattern_limit),
              ("completed", "completed task records", config.finished_task_retention_count),
              ("failed", "failed task records", config.finished_task_retention_count))
    for team_id, figures in usage["teams"].items():
        for key, what, cap in limits:
            gauges.append({"label": f"{team_id}: {what}", "value": figures[key], "max": cap,
                           "text": f"{figures[key]:,} of {cap:,}"})
    return gauges


def _chart(metric: Metric, mode: str, samples) -> dict:
    values = [v * 1000 for _, v in samples]
    target = metric.targets_ms.get(mode, metric.targets_ms["redis"])
    p50 = nearest_rank(values, 50)
    last = values[-1] if values else None
    return {"key": metric.key, "title": metric.title, "definition": metric.definition, "target_ms": target,
            "samples": len(values), "values": ",".join(f"{v:.3f}" for v in values),
            "last": format_ms(last), "p50": format_ms(p50), "p99": format_ms(nearest_rank(values, 99)),
            "within_target": None if p50 is None else p50 < target,
            "spark": sparkline(values, target) if values else None}


#: The page's live partials, in page order: name -> template (each root carries ``hx-swap-oob``).
#: ``coordination`` is the coordination chart alone (team events change it, the probe does not).
PART_TEMPLATES = {
    "error": "coordination/partials/metrics_error.html",
    "probe": "coordination/partials/metrics_probe.html",
    "latency": "coordination/partials/metrics_latency.html",
    "coordination": "coordination/partials/metrics_chart.html",
    "reuse": "coordination/partials/metrics_reuse.html",
    "teams": "coordination/partials/metrics_teams.html",
    "memory": "coordination/partials/metrics_memory.html",
}
#: What a probe round can change, and what a snapshot holds (``latency`` holds the coordination chart).
ROUND_PARTS = ("error", "probe", "latency", "reuse", "teams", "memory")
#: The parts that read the teams' figures, and those that read the memory's stats.
_TEAM_PARTS = {"latency", "coordination", "teams"}
_STATS_PARTS = {"error", "memory"}


def parts_for_event(kind: str) -> tuple[str, ...]:
    """The partials a relayed team event (or the probe's notice) can change on the metrics page."""
    if kind == ROUND_NOTICE["type"]:
        return ROUND_PARTS
    if kind == "task.claimed":  # a new coordination latency sample
        return ("coordination", "teams")
    if kind.startswith(("task.", "agent.")):
        return ("teams",)
    if kind.startswith("pattern."):  # staged counts; a promotion adds a library pattern
        return ("reuse", "teams")
    return ()


def _library_report() -> dict | None:
    try:
        library = library_figures()
    except DatabaseError as exc:
        log.warning("pattern library unavailable for metrics: %s", exc)
        return None
    for row in [library, *library["teams"].values()]:
        row["rate_text"] = format_rate(row["rate"])
    return library


def dashboard_report(memory, probe: Probe | None = None, parts=ROUND_PARTS) -> dict:
    """What the metrics page shows, limited to what ``parts`` need (a live update reads no more than
    it shows). Redis figures are None when the memory does not answer."""
    probe = probe or PROBE
    wanted = set(parts)
    report = {"mode": memory.mode, "online": True, "error": None, "stats": None, "teams": [],
              "probe": probe, "retention": retention_figures(memory.config), "window": WINDOW, "library": None}
    coordination: list = []
    try:
        if wanted & _STATS_PARTS:
            report["stats"] = memory.get_stats()
        if "memory" in wanted:
            report["gauges"] = retention_gauges(memory.config, memory.get_retention_usage())
        if wanted & _TEAM_PARTS:
            for team_id in memory.list_teams():
                figures = team_figures(memory, team_id)
                p50, last = figures["coordination_p50"], figures["coordination_last"]
                figures["coordination_p50_text"] = format_ms(None if p50 is None else p50 * 1000)
                figures["coordination_last_text"] = format_ms(None if last is None else last * 1000)
                report["teams"].append(figures)
                coordination += figures["coordination"]
    except MemoryUnavailableError as exc:
        report.update(online=False, error=str(exc))
    coordination.sort()
    series = {key: probe.series[key].samples() for key in PROBED}
    series["coordination"] = coordination[-RECENT_TASKS:]
    report["charts"] = [_chart(m, memory.mode, series[m.key]) for m in LATENCIES]
    keys = [v for _, v in probe.keys.samples()]
    report["keys_spark"] = sparkline(keys) if keys else None
    report["keys_values"] = ",".join(str(int(v)) for v in keys)
    if "reuse" in wanted:
        report["library"] = _library_report()
    return report


def render_parts(memory, parts=ROUND_PARTS, probe: Probe | None = None, extra: dict | None = None) -> list[str]:
    """The named partials of the metrics page, rendered (page order) for a live update.

    Synchronous (it reads Redis and the database): consumers call it in a worker thread.
    """
    if "latency" in parts:  # the latency section holds the coordination chart already
        parts = [p for p in parts if p != "coordination"]
    report = dashboard_report(memory, probe, parts)
    ctx = {"report": report, "probe": report["probe"], "library": report["library"], "teams": report["teams"],
           **(extra or {})}
    out = []
    for name in PART_TEMPLATES:
        if name not in parts:
            continue
        if name == "coordination":
            chart = next(c for c in report["charts"] if c["key"] == "coordination")
            out.append(render_to_string(PART_TEMPLATES[name], {**ctx, "chart": chart, "oob": True}))
        else:
            out.append(render_to_string(PART_TEMPLATES[name], ctx))
    if "error" in parts:  # the memory was asked: say whether it answered
        out.append(render_to_string("partials/memory_status.html", {"online": report["online"]}))
    return out


# -- the Prometheus text exposition (format 0.0.4), written by hand ----------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label_value(value) -> str:
    """A label value as the exposition format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Exposition:
    """Metric families in the Prometheus text format: HELP, TYPE, then one line per sample."""

    def __init__(self):
        self._lines: list[str] = []

    def add(self, name: str, kind: str, help_text: str, samples=((None, None),)) -> None:
        """``samples``: ``(labels dict or None, value)`` pairs; a family may have none."""
        self._lines += [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            text = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in (labels or {}).items())
            self._lines.append(f"{name}{{{text}}} {format_value(value)}" if text else f"{name} {format_value(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _redis_figures(memory) -> dict:
    """Everything read from Redis, read before anything is written out (an outage leaves no half)."""
    return {"keys": memory.get_stats()["keys"],
            "teams": [team_figures(memory, team_id) for team_id in memory.list_teams()]}


def prometheus_text(memory, probe: Probe | None = None) -> str:
    """The Prometheus exposition of the site's figures. Never raises for a memory outage: it reports
    ``empathy_up 0`` and what it still knows (the pattern library, the probe's last samples)."""
    probe = probe or PROBE
    try:
        redis_figures = _redis_figures(memory) if memory.ping() else None
    except MemoryUnavailableError:
        redis_figures = None
    out = Exposition()
    out.add("empathy_up", "gauge", "1 when the short-term memory (Redis or mock) answers, else 0.",
            [(None, 1 if redis_figures is not None else 0)])
    out.add("empathy_memory_mode", "gauge", "The memory mode in use, as the mode label (redis, cluster or mock).",
            [({"mode": memory.mode}, 1)])
    if redis_figures is not None:
        teams = redis_figures["teams"]
        out.add("empathy_keys", "gauge", "Keys in the Redis database (DBSIZE).", [(None, redis_figures["keys"])])
        out.add("empathy_tasks", "gauge", "Tasks per team and status.",
                [({"team": t["team"], "status": s}, n) for t in teams for s, n in t["tasks"].items()])
        out.add("empathy_tasks_completed_total", "counter", "Tasks completed per team (exact counter).",
                [({"team": t["team"]}, t["completed_total"]) for t in teams])
        out.add("empathy_tasks_failed_total", "counter", "Tasks failed per team (exact counter).",
                [({"team": t["team"]}, t["failed_total"]) for t in teams])
        out.add("empathy_agents_active", "gauge", "Agents with a recent heartbeat, per team.",
                [({"team": t["team"]}, t["agents_active"]) for t in teams])
        out.add("empathy_patterns_staged", "gauge", "Patterns waiting for a validator, per team.",
                [({"team": t["team"]}, t["patterns_staged"]) for t in teams])
        out.add("empathy_coordination_latency_seconds", "gauge",
                "Added-to-claimed time of the team's most recently claimed task (first claims).",
                [({"team": t["team"]}, t["coordination_last"]) for t in teams if t["coordination"]])
        out.add("empathy_coordination_latency_p50_seconds", "gauge",
                f"Median added-to-claimed time over the team's last {RECENT_TASKS} claimed tasks (first claims).",
                [({"team": t["team"]}, t["coordination_p50"]) for t in teams if t["coordination"]])
    try:
        library = library_figures()
    except DatabaseError:
        library = None
    if library is not None:
        rows = library["teams"].values()
        out.add("empathy_library_patterns", "gauge", "Patterns in the durable pattern library, per team.",
                [({"team": r["team"]}, r["patterns"]) for r in rows])
        out.add("empathy_library_lookups_total", "counter", "Pattern library look-ups, per team.",
                [({"team": r["team"]}, r["lookups"]) for r in rows])
        out.add("empathy_library_hits_total", "counter", "Pattern library look-ups that found a pattern, per team.",
                [({"team": r["team"]}, r["hits"]) for r in rows])
        out.add("empathy_pattern_reuse_rate", "gauge",
                "Share of library look-ups that found a pattern, all teams (NaN before the first look-up).",
                [(None, library["rate"])])
    last, p50 = [], []
    for key in PROBED:
        values = [v for _, v in probe.series[key].samples()]
        if values:
            last.append(({"operation": key}, values[-1]))
            p50.append(({"operation": key}, nearest_rank(values, 50)))
    out.add("empathy_probe_latency_seconds", "gauge", "Latest probe round trip, per operation.", last)
    out.add("empathy_probe_latency_p50_seconds", "gauge",
            f"Median probe round trip over the last {WINDOW} rounds, per operation.", p50)
    out.add("empathy_probe_runs_total", "counter", "Probe rounds run by this process.", [(None, probe.runs)])
    out.add("empathy_probe_errors_total", "counter", "Probe rounds that failed in this process.",
            [(None, probe.errors)])
    return out.text()

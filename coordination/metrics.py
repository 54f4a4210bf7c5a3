"""The chapter's Part 6 metrics, and the metrics page that shows them live.

Five figures:

* **task distribution latency**: one ``add_task`` round trip, measured by the probe;
* **signal round trip**: ``broadcast`` then ``receive_signals`` of that broadcast, by the probe
  (exactly the chapter's measurement);
* **pattern staging latency**: one ``stage_pattern`` round trip, by the probe;
* **coordination latency**: how long real tasks waited between being added and being claimed
  (``claimed_at - created_at``), read from each team's recent tasks;
* **pattern reuse rate**: the share of pattern-library look-ups that found a pattern
  (``patterns.library.reuse_rate``), per team and overall.

The probe itself: ``coordination.metrics_probe``; the Prometheus text of these figures:
``coordination.metrics_exposition``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError
from django.db.models import Count
from django.template.loader import render_to_string

from empathy_os import MemoryUnavailableError
from empathy_os.bench import nearest_rank
from empathy_os.overview import read_overview
from patterns.models import LibraryLookup, LibraryPattern

from . import metrics_probe
from .metrics_probe import PROBED, ROUND_NOTICE, WINDOW, Probe

log = logging.getLogger("coordination.metrics")

#: Recent tasks per team and status read for the coordination latency.
RECENT_TASKS = 50


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

# -- figures read from the library and the pattern library ---------------------------------------------


def coordination_samples(recent_tasks, limit: int = RECENT_TASKS) -> list[tuple[float, float]]:
    """``(claimed_at, seconds waited)`` of a team's recently claimed tasks (its overview row's
    ``recent_tasks``), oldest claim first.

    Only first claims count (``attempts == 1``): a task claimed again after a lapsed lease waited
    for the lease, not for coordination.
    """
    samples = sorted((t["claimed_at"], max(0.0, t["claimed_at"] - t["created_at"])) for t in recent_tasks
                     if t["attempts"] == 1 and t["claimed_at"] and t["created_at"])
    return samples[-limit:]


def figures_of(row: dict) -> dict:
    """What the Prometheus endpoint and the page show of a team, from its overview row."""
    coordination = coordination_samples(row["recent_tasks"])
    return {
        "team": row["team_id"],
        "tasks": row["tasks"],
        "completed_total": row["completed_total"],
        "failed_total": row["failed_total"],
        "agents_active": row["active_agents"],
        "patterns_staged": row["patterns_staged"],
        "coordination": coordination,
        "coordination_last": coordination[-1][1] if coordination else None,
        "coordination_p50": nearest_rank([s for _, s in coordination], 50),
    }


def read_figures(memory, *, server: bool = True, teams: list[str] | None = None) -> tuple[dict, list[dict]]:
    """The memory's overview (one read, :func:`empathy_os.overview.read_overview`) and every team's figures."""
    overview = read_overview(memory, RECENT_TASKS, teams=teams, server=server)
    return overview, [figures_of(row) for row in overview["teams"]]


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
#: The parts that show the teams' figures, and those that show the memory's stats (DBSIZE, INFO).
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
    probe = probe or metrics_probe.PROBE
    wanted = set(parts)
    report = {"mode": memory.mode, "online": True, "error": None, "stats": None, "teams": [],
              "probe": probe, "retention": retention_figures(memory.config), "window": WINDOW, "library": None}
    coordination: list = []
    try:
        if wanted & (_STATS_PARTS | _TEAM_PARTS | {"memory"}):  # one read of every team, whatever is shown
            overview, teams = read_figures(memory, server=bool(wanted & (_STATS_PARTS | {"memory"})))
            if wanted & _STATS_PARTS:
                report["stats"] = overview["stats"]
            if "memory" in wanted:
                report["gauges"] = retention_gauges(memory.config, overview["usage"])
            if wanted & _TEAM_PARTS:
                for figures in teams:
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

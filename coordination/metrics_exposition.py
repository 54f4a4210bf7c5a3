"""The Prometheus text exposition (format 0.0.4) of the site's figures, served at ``/metrics``."""

from __future__ import annotations

import math

from django.db import DatabaseError

from empathy_os import MemoryUnavailableError
from empathy_os.bench import nearest_rank

from . import metrics_probe
from .metrics import RECENT_TASKS, library_figures, team_figures
from .metrics_probe import PROBED, WINDOW, Probe

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
    probe = probe or metrics_probe.PROBE
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

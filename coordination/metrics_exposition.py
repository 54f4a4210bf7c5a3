"""The Prometheus exposition of the site's figures, served at ``/metrics``, through prometheus_client.

A :class:`SiteCollector` in a registry of its own reads the figures at scrape time (Redis, the
pattern library, this process's probe) and yields metric families; prometheus_client writes them in
the format the scraper asks for (``choose_encoder``: the text format 0.0.4 by default, OpenMetrics
when the ``Accept`` header asks for it), HELP and TYPE lines, escaping and number format included.

The names are those of the hand-written exposition this replaces, sample for sample. Counters are
families named without ``_total`` inside prometheus_client (its naming rule); their samples, and the
text format's HELP and TYPE lines, keep ``_total``, as before (OpenMetrics writes the family's TYPE
line without it, as that format requires). Values are written as floats (``1.0``).
"""

from __future__ import annotations

import math

from django.db import DatabaseError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from empathy_os import MemoryUnavailableError
from empathy_os.bench import nearest_rank

from . import metrics_probe
from .metrics import RECENT_TASKS, library_figures, read_figures
from .metrics_probe import PROBED, WINDOW, Probe


def _value(value) -> float:
    return math.nan if value is None else float(value)


def _family(cls, name: str, help_text: str, labels=(), samples=()):
    """A family of ``cls`` with ``samples``: ``(label values, value)`` pairs, or a bare value when the
    family has no labels (None: no sample)."""
    if not labels:
        family = cls(name, help_text, labels=[])
        if samples is not None:
            family.add_metric([], _value(samples))
        return family
    family = cls(name, help_text, labels=list(labels))
    for label_values, value in samples:
        family.add_metric([str(v) for v in label_values], _value(value))
    return family


def gauge(name: str, help_text: str, labels=(), samples=()):
    return _family(GaugeMetricFamily, name, help_text, labels, samples)


def counter(name: str, help_text: str, labels=(), samples=()):
    return _family(CounterMetricFamily, name, help_text, labels, samples)


def _redis_figures(memory) -> dict:
    """Everything read from Redis, read before anything is written out (an outage leaves no half)."""
    overview, teams = read_figures(memory)  # one read, whatever the number of teams
    return {"keys": overview["stats"]["keys"], "teams": teams}


class SiteCollector(Collector):
    """The site's figures, read when Prometheus scrapes. ``memory`` and ``probe`` are callables (the
    site's memory, this process's probe), so one registry serves every scrape."""

    def __init__(self, memory, probe=None):
        self.memory = memory
        self.probe = probe or (lambda: metrics_probe.PROBE)

    def collect(self):
        """Never raises for a memory outage: ``empathy_up 0`` and what it still knows (the pattern
        library, the probe's last samples)."""
        memory, probe = self.memory(), self.probe()
        try:
            redis_figures = _redis_figures(memory) if memory.ping() else None
        except MemoryUnavailableError:
            redis_figures = None
        yield gauge("empathy_up", "1 when the short-term memory (Redis or mock) answers, else 0.",
                    samples=1 if redis_figures is not None else 0)
        yield gauge("empathy_memory_mode", "The memory mode in use, as the mode label (redis, cluster or mock).",
                    ["mode"], [([memory.mode], 1)])
        if redis_figures is not None:
            yield from _redis_families(redis_figures)
        try:
            library = library_figures()
        except DatabaseError:
            library = None
        if library is not None:
            yield from _library_families(library)
        yield from _probe_families(probe)


def _redis_families(figures: dict):
    teams = figures["teams"]
    team = ["team"]
    yield gauge("empathy_keys", "Keys in the Redis database (DBSIZE).", samples=figures["keys"])
    yield gauge("empathy_tasks", "Tasks per team and status.", ["team", "status"],
                [([t["team"], s], n) for t in teams for s, n in t["tasks"].items()])
    yield counter("empathy_tasks_completed_total", "Tasks completed per team (exact counter).", team,
                  [([t["team"]], t["completed_total"]) for t in teams])
    yield counter("empathy_tasks_failed_total", "Tasks failed per team (exact counter).", team,
                  [([t["team"]], t["failed_total"]) for t in teams])
    yield gauge("empathy_agents_active", "Agents with a recent heartbeat, per team.", team,
                [([t["team"]], t["agents_active"]) for t in teams])
    yield gauge("empathy_patterns_staged", "Patterns waiting for a validator, per team.", team,
                [([t["team"]], t["patterns_staged"]) for t in teams])
    yield gauge("empathy_coordination_latency_seconds",
                "Added-to-claimed time of the team's most recently claimed task (first claims).", team,
                [([t["team"]], t["coordination_last"]) for t in teams if t["coordination"]])
    yield gauge("empathy_coordination_latency_p50_seconds",
                f"Median added-to-claimed time over the team's last {RECENT_TASKS} claimed tasks (first claims).",
                team, [([t["team"]], t["coordination_p50"]) for t in teams if t["coordination"]])


def _library_families(library: dict):
    rows = library["teams"].values()
    team = ["team"]
    yield gauge("empathy_library_patterns", "Patterns in the durable pattern library, per team.", team,
                [([r["team"]], r["patterns"]) for r in rows])
    yield counter("empathy_library_lookups_total", "Pattern library look-ups, per team.", team,
                  [([r["team"]], r["lookups"]) for r in rows])
    yield counter("empathy_library_hits_total", "Pattern library look-ups that found a pattern, per team.", team,
                  [([r["team"]], r["hits"]) for r in rows])
    yield gauge("empathy_pattern_reuse_rate",
                "Share of library look-ups that found a pattern, all teams (NaN before the first look-up).",
                samples=_value(library["rate"]))


def _probe_families(probe: Probe):
    last, p50 = [], []
    for key in PROBED:
        values = [v for _, v in probe.series[key].samples()]
        if values:
            last.append(([key], values[-1]))
            p50.append(([key], nearest_rank(values, 50)))
    operation = ["operation"]
    yield gauge("empathy_probe_latency_seconds", "Latest probe round trip, per operation.", operation, last)
    yield gauge("empathy_probe_latency_p50_seconds",
                f"Median probe round trip over the last {WINDOW} rounds, per operation.", operation, p50)
    yield counter("empathy_probe_runs_total", "Probe rounds run by this process.", samples=probe.runs)
    yield counter("empathy_probe_errors_total", "Probe rounds that failed in this process.", samples=probe.errors)


def site_registry(memory, probe=None) -> CollectorRegistry:
    """A registry holding only the site's collector (not prometheus_client's default registry, whose
    process and platform collectors describe this process's Python, not the site)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SiteCollector(memory, probe))
    return registry


def exposition(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type, in the format ``accept`` asks for (text 0.0.4 by default)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def prometheus_text(memory, probe: Probe | None = None) -> str:
    """The text format 0.0.4 of the site's figures for ``memory`` (and ``probe``: this process's)."""
    body, _ = exposition(site_registry(lambda: memory, (lambda: probe) if probe else None))
    return body.decode()

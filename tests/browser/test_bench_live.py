"""``manage.py bench --live`` (coordination/bench_live.py): the report's shape, on a small run.

Nothing here is timed: the figures depend on the machine.
"""

from __future__ import annotations

import pytest

from coordination.bench_live import format_live_table, run_live_bench
from coordination.servers import SERVERS


@pytest.mark.parametrize("server", SERVERS)
def test_it_measures_event_to_dom_and_reports_percentiles(browser, redis_server, memory, server):
    report = run_live_bench(redis_server.url, samples=5, sockets=5, server=server, browser=browser, warmup=1,
                            log=lambda *_: None)

    assert report["mode"] == "redis" and report["server"] == server
    assert report["samples"] == 5
    assert report["sockets"] == 5
    assert set(report["ops"]) == {"task.added", "task.claimed", "task.completed"}
    for figures in [*report["ops"].values(), report["all"]]:
        assert set(figures) == {"p50_ms", "p99_ms", "max_ms"}
        assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(report["clock"]) == {"browser_minus_python_ms", "uncertainty_ms"}
    assert set(report["target"]) == {"p50_ms", "p99_ms", "met"}
    assert f"Event to browser DOM (redis, {server}," in format_live_table(report)
    assert not [t for t in memory.list_teams() if t.startswith("bench-live-")]  # its team is cleaned up

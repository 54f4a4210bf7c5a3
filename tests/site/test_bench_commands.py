"""``manage.py bench --http`` and ``--load``, run end to end on a private redis-server: report shape
and the load run's checks (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordination.bench_http import format_http_table
from coordination.bench_load import format_load_table

ROOT = Path(__file__).resolve().parents[2]


def _manage(tmp_path, redis_url, *args, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in ("EMPATHY_REDIS_MOCK",)}
    env.update(DJANGO_SETTINGS_MODULE="empathy_site.settings", REDIS_URL=redis_url,
               EMPATHY_DB_PATH=str(tmp_path / "db.sqlite3"))
    run = lambda *a: subprocess.run([sys.executable, "manage.py", *a], cwd=ROOT, env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=timeout)
    migrated = run("migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return run(*args)


def _figures(row):
    assert set(row) == {"p50_us", "p99_us"} and 0 < row["p50_us"] <= row["p99_us"]


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_http_bench_reports_latency_ratio_and_throughput(tmp_path, redis_url, server):
    done = _manage(tmp_path, redis_url, "bench", "--http", "--json", "--server", server, "--samples", "20",
                   "--requests", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["server"] == server and report["mode"] == "redis"
    for row in [*report["baseline"].values(), *report["ops"].values()]:
        _figures(row)
    assert set(report["ops"]) == {"http_claim_task", "http_complete_task"}
    assert report["claim_ratio"]["baseline"] == "redis_ping" and report["claim_ratio"]["p50_ratio"] > 0
    assert [t["clients"] for t in report["throughput"]] == [1, 50]
    for t in report["throughput"]:
        assert t["errors_5xx"] == 0 and t["requests"] >= 40 and t["completed"] == 20 and t["requests_per_s"] > 0
    table = format_http_table(report)
    assert "x the raw Redis round trip" in table and "req/s" in table


def test_load_bench_completes_every_task_exactly_once(tmp_path, redis_url):
    done = _manage(tmp_path, redis_url, "bench", "--load", "--json", "--tasks", "400", "--server", "uvicorn")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    mixed, alone = report["mixed"], report["processes_alone"]
    assert mixed["checks"] == {"lost": 0, "double_completed": 0, "counter_minus_tasks": 0, "left_pending": 0,
                               "left_in_progress": 0, "http_5xx": 0}
    assert [r["agents"] for r in mixed["rows"]] == [200, 8, 208]
    assert mixed["rows"][2]["tasks"] == 400 == mixed["rows"][0]["tasks"] + mixed["rows"][1]["tasks"]
    assert alone["tasks"] == 400 and alone["processes"] == 8
    assert alone["lua_ceiling_per_s"] > 0 and alone["server_us_per_script"] > 0
    assert "OK" in format_load_table(report)

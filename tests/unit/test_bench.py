"""``python -m empathy_os.bench``: report shape, clean-up on a shared Redis, command line.

No latency threshold is asserted anywhere: timings depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from empathy_os import AgentCredentials, Config
from empathy_os.bench import BASELINES, OPS, REFERENCE, format_table, main, run_bench
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "empathybench"


def _check_shape(report: dict) -> None:
    assert set(BASELINES) == {"ping", "set", "get", "evalsha"}
    assert set(report["baseline"]) == set(BASELINES)
    assert set(report["ops"]) == {"stash", "retrieve", "add_task", "claim_task", "complete_task", "send_signal",
                                  "receive_signals", "stage_pattern"}
    for figures in [*report["baseline"].values(), *report["ops"].values()]:
        assert set(figures) == {"p50_us", "p99_us"}
        assert 0 < figures["p50_us"] <= figures["p99_us"]
    for op, ratio in report["ratios"].items():
        assert ratio["baseline"] == REFERENCE[op]
        assert ratio["p50_ratio"] > 0


def _keys(client, pattern: str) -> list[str]:
    return sorted(client.scan_iter(match=pattern))


def test_it_reports_p50_and_p99_of_every_op_and_baseline(memory_factory, backend):
    memory = memory_factory(config=Config(key_prefix=PREFIX))

    report = run_bench(memory, 30, warmup=5)

    assert report["mode"] == ("mock" if backend == "mock" else "redis")
    assert report["samples"] == 30
    _check_shape(report)
    assert set(report["ratios"]) == set(OPS)
    assert report["ratios"]["retrieve"]["baseline"] == "get"
    assert {report["ratios"][op]["baseline"] for op in OPS if op != "retrieve"} == {"evalsha"}
    json.dumps(report)  # the report is what --json prints
    if backend == "mock":  # no server to ask: no INFO commandstats
        assert "server" not in report and "breakdown" not in report
    else:
        _check_server_time(report)
        assert "+ server" in format_table(report)


def _check_server_time(report: dict) -> None:
    """Per-op server time (INFO commandstats deltas) and the p50 split round trip + server + client."""
    assert set(report["server"]) == set(BASELINES) | set(OPS)
    for figures in report["server"].values():
        assert set(figures) == {"p50_us", "mean_us", "samples"}
        assert figures["samples"] > 0 and figures["p50_us"] >= 0 and figures["mean_us"] >= 0
    assert report["server"]["claim_task"]["mean_us"] > report["server"]["ping"]["mean_us"]  # a script vs PING
    assert set(report["breakdown"]) == set(OPS)
    for op, split in report["breakdown"].items():
        assert set(split) == {"round_trip_us", "server_us", "client_us"}
        total = split["round_trip_us"] + split["server_us"] + split["client_us"]
        assert abs(total - report["ops"][op]["p50_us"]) < 0.5


def test_it_leaves_no_keys_with_its_prefix_behind(memory_factory):
    memory = memory_factory(config=Config(key_prefix=PREFIX))

    run_bench(memory, 20, warmup=3)

    assert _keys(memory.client, PREFIX + "*") == []


def test_it_deletes_only_its_own_team_and_keeps_everything_else(memory_factory):
    bench = memory_factory(config=Config(key_prefix=PREFIX))
    app = memory_factory()  # the library's default prefix, as a live deployment on the same Redis
    app.stash(AgentCredentials("agent-a", team_id="team-a"), "notes", {"keep": True})
    bench.stash(AgentCredentials("agent-b", team_id="other-bench-team"), "notes", {"keep": True})
    before = _keys(bench.client, "*")

    run_bench(bench, 20, warmup=3)

    assert _keys(bench.client, "*") == before
    assert app.retrieve(AgentCredentials("agent-a", team_id="team-a"), "notes") == {"keep": True}
    assert bench.list_teams() == ["other-bench-team"]


def test_it_prints_a_table_naming_the_baseline_of_each_ratio(capsys):
    assert main(["--mock", "--samples", "10", "--warmup", "2"]) == 0

    out = capsys.readouterr().out
    assert "mode mock" in out
    for name in ("PING", "SET", "GET", "EVALSHA (return 1)", *OPS):
        assert name in out
    assert "EVALSHA for the operations that run a Lua script, GET for retrieve" in out


def test_it_formats_a_report_without_a_warmup_figure(memory_factory):
    report = run_bench(memory_factory(config=Config(key_prefix=PREFIX)), 5, warmup=0)

    table = format_table(report)

    assert "warm-up" not in table
    assert "stage_pattern" in table


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EMPATHY_REDIS_MOCK")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "empathy_os.bench", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_it_prints_exactly_one_json_object_with_json():
    done = _run_cli("--json", "--samples", "50", EMPATHY_REDIS_MOCK="1")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # fails on anything but one JSON document
    assert report["mode"] == "mock"
    assert report["samples"] == 50
    _check_shape(report)


@pytest.mark.parametrize("how", ["--url", "REDIS_URL"])
def test_it_exits_2_with_a_clear_message_when_redis_does_not_answer(how):
    url = f"redis://127.0.0.1:{free_port()}/0"
    if how == "--url":
        done = _run_cli("--json", "--samples", "5", "--url", url)
    else:
        done = _run_cli("--json", "--samples", "5", REDIS_URL=url)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "127.0.0.1" in done.stderr and "not answer" in done.stderr

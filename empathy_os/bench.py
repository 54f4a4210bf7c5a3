"""Latency of the library's operations beside raw Redis round trips: ``python -m empathy_os.bench``.

Measures, in the mode the library picks (or ``--mock`` / ``--url``), p50 and p99 in microseconds of
the chapter's Part 6 operations (task distribution, signal round trip, pattern staging) and of
stash/retrieve, next to PING, SET, GET and one EVALSHA of ``return 1`` sent through the same client
in the same run. Samples are taken in interleaved rounds (one sample of everything per round, after
warm-up rounds), so drift affects the baseline and the operations alike.

Safe on a shared Redis: everything is written under the prefix ``empathybench`` in a team of its own
(``bench-<random>``), and only that team's keys are removed afterwards (SCAN MATCH + UNLINK, never
KEYS or FLUSHDB). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from time import perf_counter_ns

from redis.exceptions import RedisError

from .coordinator import AgentCoordinator, AgentTask
from .defaults import Config
from .empathy import EmpathyOS
from .exceptions import EmpathyError
from .keys import teams_key
from .patterns import StagedPattern
from .redis_memory import RedisShortTermMemory, get_redis_memory
from .tiers import AccessTier

BENCH_PREFIX = "empathybench"
DEFAULT_SAMPLES = 2000
BASELINES = ("ping", "set", "get", "evalsha")
OPS = ("stash", "retrieve", "add_task", "claim_task", "complete_task", "send_signal", "receive_signals",
       "stage_pattern")
#: The raw round trip each operation is compared with: the closest kind of command.
REFERENCE = {op: "evalsha" for op in OPS} | {"retrieve": "get"}
#: Where each operation sits in the chapter.
CHAPTER = {"add_task": "task distribution", "claim_task": "task distribution",
           "complete_task": "task distribution", "send_signal": "signal round trip",
           "receive_signals": "signal round trip", "stage_pattern": "pattern staging",
           "stash": "working memory", "retrieve": "working memory"}
VALUE = {"step": 3, "notes": "benchmark value", "scores": [0.25, 0.5, 0.75], "done": False}


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def cleanup(memory: RedisShortTermMemory, team_id: str, batch: int = 500) -> int:
    """Delete every key of ``team_id`` (SCAN MATCH on its key base, UNLINK in batches) and drop the
    team from the team index. Never KEYS, FLUSHDB or FLUSHALL. Returns how many keys were deleted."""
    client, deleted, chunk = memory.client, 0, []
    for key in client.scan_iter(match=_glob_escape(memory.team(team_id).base) + "*", count=batch):
        chunk.append(key)
        if len(chunk) >= batch:
            deleted += client.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += client.unlink(*chunk)
    client.zrem(teams_key(memory.config.key_prefix), team_id)  # an emptied index disappears with its last member
    return deleted


def _percentiles(samples_ns: list[int]) -> dict:
    s = sorted(samples_ns)
    n = len(s)

    def rank(p):  # nearest-rank percentile
        return s[min(n - 1, max(0, -(-p * n // 100) - 1))] / 1000

    return {"p50_us": round(rank(50), 1), "p99_us": round(rank(99), 1)}


def run_bench(memory: RedisShortTermMemory, samples: int = DEFAULT_SAMPLES, *, warmup: int | None = None) -> dict:
    """Measure ``samples`` of each baseline command and each operation; returns the JSON report.

    Uses a team of its own on ``memory`` and deletes that team's keys before returning.
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    warmup = max(20, min(500, samples // 5)) if warmup is None else warmup
    team_id = f"bench-{uuid.uuid4().hex[:12]}"
    client = memory.client
    base = memory.team(team_id).base
    set_key, get_key = base + "baseline:set", base + "baseline:get"
    sender = EmpathyOS("bench-sender", memory, AccessTier.STEWARD, team_id=team_id)
    reader = EmpathyOS("bench-reader", memory, team_id=team_id)
    coordinator = AgentCoordinator(memory, team_id)
    worker = "bench-worker"
    names = BASELINES + OPS
    times = {name: [] for name in names}
    round_trip = []
    try:
        client.set(get_key, json.dumps(VALUE))
        sha = client.script_load("return 1")
        for i in range(-warmup, samples):
            record = i >= 0
            tag = f"{i + warmup}"
            task = AgentTask(task_id=f"t{tag}", task_type="bench", description="benchmark task",
                             context={"round": i})
            pattern = StagedPattern(pattern_id=f"p{tag}", agent_id="bench-sender", pattern_type="bench",
                                    name="benchmark pattern", description=f"pattern number {tag}",
                                    confidence=0.8, context={"round": i})
            steps = (
                ("ping", client.ping),
                ("stash", lambda: sender.stash("bench-key", VALUE)),
                ("set", lambda: client.set(set_key, "x")),
                ("retrieve", lambda: sender.retrieve("bench-key")),
                ("get", lambda: client.get(get_key)),
                ("add_task", lambda: coordinator.add_task(task)),
                ("evalsha", lambda: client.evalsha(sha, 0)),
                ("claim_task", lambda: coordinator.claim_task(worker, "bench")),
                ("complete_task", lambda: coordinator.complete_task(
                    task.task_id, {"ok": True}, worker, lease_token=claimed.lease_token)),
                ("send_signal", lambda: sender.send_signal("bench.ping", {"round": i})),
                ("receive_signals", lambda: reader.receive_signals("bench.ping")),
                ("stage_pattern", lambda: sender.stage_pattern(pattern)),
            )
            elapsed = {}
            for name, call in steps:
                t0 = perf_counter_ns()
                result = call()
                elapsed[name] = perf_counter_ns() - t0
                if name == "claim_task":
                    claimed = result
                    if claimed is None or claimed.task_id != task.task_id:
                        raise RuntimeError(f"bench: claimed {claimed!r} instead of task {task.task_id}")
                elif name == "receive_signals" and len(result) != 1:
                    raise RuntimeError(f"bench: the reader received {len(result)} signals, expected 1")
            if record:
                for name in names:
                    times[name].append(elapsed[name])
                round_trip.append(elapsed["send_signal"] + elapsed["receive_signals"])
    finally:
        cleanup(memory, team_id)
    baseline = {name: _percentiles(times[name]) for name in BASELINES}
    ops = {name: _percentiles(times[name]) for name in OPS}
    ratios = {op: {"baseline": REFERENCE[op],
                   "p50_ratio": round(ops[op]["p50_us"] / max(baseline[REFERENCE[op]]["p50_us"], 0.1), 2)}
              for op in OPS}
    trip = _percentiles(round_trip)
    trip["p50_ratio"] = round(trip["p50_us"] / max(2 * baseline["evalsha"]["p50_us"], 0.1), 2)
    return {"mode": memory.mode, "samples": samples, "warmup_rounds": warmup, "baseline": baseline,
            "ops": ops, "ratios": ratios, "signal_round_trip": trip}


def format_table(report: dict, where: str = "") -> str:
    """The report as a text table (what ``python -m empathy_os.bench`` prints)."""
    b = report["baseline"]
    lines = [f"empathy_os bench: mode {report['mode']}{where}, {report['samples']} samples per row "
             f"after {report['warmup_rounds']} warm-up rounds, interleaved (one sample of every row per round)",
             "", f"{'raw round trip (same client)':<34}{'p50 us':>10}{'p99 us':>10}"]
    for name, label in zip(BASELINES, ("PING", "SET", "GET", "EVALSHA (return 1)")):
        lines.append(f"{label:<34}{b[name]['p50_us']:>10.1f}{b[name]['p99_us']:>10.1f}")
    lines += ["", f"{'operation':<18}{'chapter':<18}{'p50 us':>10}{'p99 us':>10}{'p50 ratio':>11}  vs"]
    order = ("add_task", "claim_task", "complete_task", "send_signal", "receive_signals", "stage_pattern",
             "stash", "retrieve")
    for op in order:
        o, r = report["ops"][op], report["ratios"][op]
        lines.append(f"{op:<18}{CHAPTER[op]:<18}{o['p50_us']:>10.1f}{o['p99_us']:>10.1f}"
                     f"{r['p50_ratio']:>10.2f}x  {r['baseline'].upper()} p50")
    t = report["signal_round_trip"]
    lines.append(f"{'send+receive':<18}{'signal round trip':<18}{t['p50_us']:>10.1f}{t['p99_us']:>10.1f}"
                 f"{t['p50_ratio']:>10.2f}x  2 x EVALSHA p50")
    lines += ["", "ratio = operation p50 / p50 of the raw round trip named in the last column "
                  "(Lua-script operations vs EVALSHA, retrieve vs GET)"]
    return "\n".join(lines)


def open_memory(args) -> RedisShortTermMemory:
    config = Config(key_prefix=BENCH_PREFIX)
    if args.mock:
        return RedisShortTermMemory(use_mock=True, config=config)
    if args.url:
        memory = RedisShortTermMemory(args.url, config=config)
        memory.client.ping()  # raises when it does not answer
        return memory
    return get_redis_memory(config=config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m empathy_os.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                        help=f"samples per operation and per baseline command (default {DEFAULT_SAMPLES})")
    parser.add_argument("--warmup", type=int, default=None, metavar="N",
                        help="unrecorded warm-up rounds (default: samples/5, between 20 and 500)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--mock", action="store_true", help="use the in-process mock (fakeredis)")
    where.add_argument("--url", help="Redis URL to use (default: REDIS_URL, localhost:6379, else mock)")
    args = parser.parse_args(argv)
    if args.samples < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--samples must be at least 1 and --warmup at least 0")
    memory = None
    try:
        memory = open_memory(args)
        report = run_bench(memory, args.samples, warmup=args.warmup)
    except (RedisError, EmpathyError, OSError) as exc:
        where_ = memory.url if memory is not None and memory.url else (args.url or "Redis")
        print(f"empathy_os.bench: {where_} did not answer or refused the benchmark: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("empathy_os.bench: interrupted (the bench team's keys were removed)", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report, f" at {memory.url}" if memory.url else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

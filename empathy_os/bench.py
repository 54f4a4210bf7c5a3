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
from dataclasses import replace
from time import perf_counter_ns

from redis.exceptions import RedisError

from . import team_index
from .coordinator import AgentCoordinator, AgentTask
from .defaults import Config
from .empathy import EmpathyOS
from .exceptions import EmpathyError
from .patterns import StagedPattern
from .redis_memory import RedisShortTermMemory, get_redis_memory

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
TABLE_ORDER = ("add_task", "claim_task", "complete_task", "send_signal", "receive_signals", "stage_pattern",
               "stash", "retrieve")
#: The issue's targets: on a real Redis, p50 at most this many times the baseline's p50; in mock mode, under 1 ms.
DEFAULT_RATIO_TARGET = 1.3
RATIO_TARGET = {"receive_signals": 1.5}
MOCK_TARGET_US = 1000.0
#: Tasks per call in the batch rows.
BATCH_SIZE = 100
VALUE = {"step": 3, "notes": "benchmark value", "scores": [0.25, 0.5, 0.75], "done": False}


def cleanup(memory: RedisShortTermMemory, team_id: str, batch: int = 500) -> int:
    """Delete every key of ``team_id`` (SCAN MATCH on its key base, UNLINK in batches) and drop the
    team from the team index. Never KEYS, FLUSHDB or FLUSHALL. Returns how many keys were deleted."""
    client, deleted, chunk = memory.client, 0, []
    for key in client.scan_iter(match=memory.team(team_id).match_all, count=batch):
        chunk.append(key)
        if len(chunk) >= batch:
            deleted += client.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += client.unlink(*chunk)
    team_index.forget(memory, team_id)  # an emptied shard disappears with its last member
    return deleted


def nearest_rank(values, percent: int):
    """The nearest-rank ``percent``-th percentile of ``values`` (None when there are none): the
    smallest value with at least ``percent`` % of the values at or below it."""
    s = sorted(values)
    if not s:
        return None
    return s[min(len(s) - 1, max(0, -(-percent * len(s) // 100) - 1))]


def _percentiles(samples_ns: list[int]) -> dict:
    return {"p50_us": round(nearest_rank(samples_ns, 50) / 1000, 1),
            "p99_us": round(nearest_rank(samples_ns, 99) / 1000, 1)}


def default_warmup(samples: int) -> int:
    return max(20, min(300, samples // 10))


def run_bench(memory: RedisShortTermMemory, samples: int = DEFAULT_SAMPLES, *, warmup: int | None = None) -> dict:
    """Measure ``samples`` of each baseline command and each operation; returns the JSON report.

    Uses a team of its own on ``memory`` and deletes that team's keys before returning.
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    warmup = default_warmup(samples) if warmup is None else warmup
    rounds = warmup + samples + (samples // 3 + 1 if server_time_measurable(memory) else 0)
    if memory.config.staged_pattern_limit <= rounds:  # one new pattern per round, none decided
        memory = RedisShortTermMemory(client=memory.client, config=replace(
            memory.config, staged_pattern_limit=rounds + 1))
    team_id = f"bench-{uuid.uuid4().hex[:12]}"
    client = memory.client
    set_key, get_key = memory.team(team_id).scratch("baseline-set"), memory.team(team_id).scratch("baseline-get")
    sender = EmpathyOS("bench-sender", memory, team_id=team_id)
    reader = EmpathyOS("bench-reader", memory, team_id=team_id)
    coordinator = AgentCoordinator(memory, team_id)
    worker = "bench-worker"
    names = BASELINES + OPS
    times = {name: [] for name in names}
    server = {name: [] for name in names}
    payload = json.dumps(VALUE)
    try:
        client.set(get_key, payload)
        sha = client.script_load("return 1")
        cur = {}  # this round's task, pattern and claim, read by the steps
        steps = (
            ("ping", client.ping),
            ("stash", lambda: sender.stash("bench-key", VALUE)),
            ("set", lambda: client.set(set_key, payload)),
            ("retrieve", lambda: sender.retrieve("bench-key")),
            ("get", lambda: client.get(get_key)),
            ("add_task", lambda: coordinator.add_task(cur["task"])),
            ("evalsha", lambda: client.evalsha(sha, 0)),
            ("claim_task", lambda: coordinator.claim_task(worker, "bench")),
            ("complete_task", lambda: coordinator.complete_task(
                cur["task"].task_id, {"ok": True}, worker, lease_token=cur["claimed"].lease_token)),
            ("send_signal", lambda: sender.send_signal("bench.ping", {"round": cur["round"]})),
            ("receive_signals", lambda: reader.receive_signals("bench.ping")),
            ("stage_pattern", lambda: sender.stage_pattern(cur["pattern"])),
        )
        server_rounds = server_time_measurable(memory)
        i, recorded = -warmup, 0
        while recorded < samples:
            # Every 4th round after warm-up reads INFO commandstats around each step (server time);
            # the other rounds time the steps. Both kinds interleave through the whole run.
            server_round = server_rounds and i >= 0 and i % 4 == 3
            record = i >= 0 and not server_round
            recorded += record
            tag = i + warmup
            i += 1
            cur["round"] = tag
            cur["task"] = AgentTask(task_id=f"t{tag}", task_type="bench", description="benchmark task",
                                    context={"round": tag})
            cur["pattern"] = StagedPattern(pattern_id=f"p{tag}", agent_id="bench-sender", pattern_type="bench",
                                           name="benchmark pattern", description=f"pattern number {tag}",
                                           confidence=0.8, context={"round": tag})
            elapsed = {}
            for name, call in steps:
                if server_round:
                    s0 = server_usec(client)
                    result = call()
                    server[name].append(server_usec(client) - s0)
                else:
                    t0 = perf_counter_ns()
                    result = call()
                    elapsed[name] = perf_counter_ns() - t0
                if name == "claim_task":
                    cur["claimed"] = result
                    if result is None or result.task_id != cur["task"].task_id:
                        raise RuntimeError(f"bench: claimed {result!r} instead of task {cur['task'].task_id}")
                elif name == "receive_signals" and len(result) != 1:
                    raise RuntimeError(f"bench: the reader received {len(result)} signals, expected 1")
            if record:
                for name in names:
                    times[name].append(elapsed[name])
        batches = bench_batches(coordinator, worker, batch_rounds(samples))
    finally:
        cleanup(memory, team_id)
    baseline = {name: _percentiles(times[name]) for name in BASELINES}
    ops = {name: _percentiles(times[name]) for name in OPS}
    ratios = {op: {"baseline": REFERENCE[op],
                   "p50_ratio": round(ops[op]["p50_us"] / max(baseline[REFERENCE[op]]["p50_us"], 0.1), 2)}
              for op in OPS}
    report = {"mode": memory.mode, "samples": samples, "baseline": baseline, "ops": ops, "ratios": ratios}
    one_by_one = sum(ops[op]["p50_us"] for op in ("add_task", "claim_task", "complete_task"))
    batches["one_by_one"] = {"p50_us": round(one_by_one, 1), "tasks_per_s": round(1e6 / max(one_by_one, 0.1))}
    report["batches"] = batches
    if server["evalsha"]:
        report["server"] = {name: _server_figures(server[name]) for name in names}
        report["breakdown"] = breakdown(report)
    return report


def batch_rounds(samples: int) -> int:
    return max(3, min(20, samples // 100))


def bench_batches(coordinator: AgentCoordinator, worker: str, rounds: int, size: int = BATCH_SIZE) -> dict:
    """p50 of ``add_tasks``, ``claim_tasks`` and ``complete_tasks`` of ``size`` tasks (one client),
    and the tasks per second each gives."""
    times = {"add_tasks": [], "claim_tasks": [], "complete_tasks": []}
    for r in range(rounds):
        tasks = [AgentTask(task_id=f"b{r}-{j}", task_type="bench-batch", context={"j": j}) for j in range(size)]
        t0 = perf_counter_ns()
        coordinator.add_tasks(tasks)
        t1 = perf_counter_ns()
        claimed = coordinator.claim_tasks(worker, size, "bench-batch")
        t2 = perf_counter_ns()
        replies = coordinator.complete_tasks([(t.task_id, {"ok": True}, t.lease_token) for t in claimed], worker)
        t3 = perf_counter_ns()
        if len(claimed) != size or replies != [worker] * size:
            raise RuntimeError(f"bench: batch round {r} claimed {len(claimed)} and completed "
                               f"{replies.count(worker)} of {size} tasks")
        for name, ns in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[name].append(ns)
    out = {"size": size, "rounds": rounds}
    for name, samples in times.items():
        p50 = nearest_rank(samples, 50) / 1000
        out[name] = {"p50_us": round(p50, 1), "tasks_per_s": round(size * 1e6 / p50)}
    return out


def server_time_measurable(memory) -> bool:
    """INFO commandstats deltas are one server's: a real, single Redis (not the mock, not a cluster)."""
    return memory.mode == "redis"


def server_usec(client) -> int:
    """Microseconds the server has spent running commands so far (INFO commandstats, INFO itself excluded)."""
    stats = client.info("commandstats")
    return sum(v["usec"] for k, v in stats.items() if k != "cmdstat_info")


def _server_figures(deltas: list[int]) -> dict:
    return {"p50_us": float(nearest_rank(deltas, 50)), "mean_us": round(sum(deltas) / len(deltas), 2),
            "samples": len(deltas)}


def breakdown(report: dict) -> dict:
    """Each op's p50 split as ``round trip + server + client``: the round trip is its baseline's p50
    less the baseline's own server time; server is the op's p50 time inside Redis; client is the rest
    (Python in empathy_os and redis-py: building arguments, parsing the reply)."""
    out = {}
    for op in OPS:
        ref = REFERENCE[op]
        trip = report["baseline"][ref]["p50_us"] - report["server"][ref]["p50_us"]
        srv = report["server"][op]["p50_us"]
        out[op] = {"round_trip_us": round(trip, 1), "server_us": round(srv, 1),
                   "client_us": round(report["ops"][op]["p50_us"] - trip - srv, 1)}
    return out


def target(report: dict, op: str) -> str:
    """The issue's target for ``op`` in this mode, and whether this run met it."""
    if report["mode"] == "mock":
        return "met" if report["ops"][op]["p50_us"] < MOCK_TARGET_US else "MISSED"
    limit = RATIO_TARGET.get(op, DEFAULT_RATIO_TARGET)
    return f"{'met' if report['ratios'][op]['p50_ratio'] <= limit else 'MISSED'} (<= {limit:.1f}x)"


def format_table(report: dict, where: str = "", warmup: int | None = None) -> str:
    """The report as a text table (what ``python -m empathy_os.bench`` prints)."""
    b, ops = report["baseline"], report["ops"]
    warm = "" if warmup is None else f" after {warmup} warm-up rounds"
    lines = [f"empathy_os bench: mode {report['mode']}{where}, {report['samples']} samples per row{warm}, "
             "interleaved (each round takes one sample of every row)",
             "", f"{'raw round trip (same client)':<36}{'p50 us':>9}{'p99 us':>9}"]
    for name, label in zip(BASELINES, ("PING", "SET", "GET", "EVALSHA (return 1)")):
        lines.append(f"{label:<36}{b[name]['p50_us']:>9.1f}{b[name]['p99_us']:>9.1f}")
    goal = "p50 < 1 ms" if report["mode"] == "mock" else "p50 ratio"
    lines += ["", f"{'operation':<18}{'chapter Part 6':<18}{'p50 us':>9}{'p99 us':>9}{'ratio':>8}"
                  f"  {'baseline':<9}target: {goal}"]
    for op in TABLE_ORDER:
        r = report["ratios"][op]
        lines.append(f"{op:<18}{CHAPTER[op]:<18}{ops[op]['p50_us']:>9.1f}{ops[op]['p99_us']:>9.1f}"
                     f"{r['p50_ratio']:>7.2f}x  {r['baseline'].upper():<9}{target(report, op)}")
    if "breakdown" in report:
        lines += format_breakdown(report)
    trip = ops["send_signal"]["p50_us"] + ops["receive_signals"]["p50_us"]
    lines.append(f"{'send + receive':<18}{'signal round trip':<18}{trip:>9.1f}{'-':>9}"
                 f"{trip / max(2 * b['evalsha']['p50_us'], 0.1):>7.2f}x  2xEVALSHA (sum of the two p50s)")
    lines += format_batches(report["batches"])
    lines += ["", "ratio = operation p50 / p50 of its baseline, the raw round trip of the closest kind measured "
                  "in this run: EVALSHA for the operations that run a Lua script, GET for retrieve"]
    return "\n".join(lines)


def format_batches(batches: dict) -> list[str]:
    lines = ["", f"batches of {batches['size']} tasks, one client ({batches['rounds']} rounds)",
             f"{'call':<36}{'p50 us':>10}{'tasks/s':>10}"]
    for name in ("add_tasks", "claim_tasks", "complete_tasks"):
        lines.append(f"{name + '(' + str(batches['size']) + ')':<36}{batches[name]['p50_us']:>10.1f}"
                     f"{batches[name]['tasks_per_s']:>10,}")
    lines.append(f"{'add + claim + complete, one by one':<36}{batches['one_by_one']['p50_us']:>10.1f}"
                 f"{batches['one_by_one']['tasks_per_s']:>10,}")
    return lines


def format_breakdown(report: dict) -> list[str]:
    """Where each op's p50 goes: round trip + server (INFO commandstats, same run) + client."""
    srv = report["server"]
    lines = ["", f"where the p50 goes (server: INFO commandstats deltas on {srv['evalsha']['samples']} "
                 "interleaved rounds of this run; p50 us per op)",
             f"{'operation':<18}{'p50 us':>9}{'= trip':>9}{'+ server':>10}{'+ client':>10}{'ratio':>8}"]
    for name, label in (("evalsha", "EVALSHA return 1"), ("get", "GET")):
        trip = report["baseline"][name]["p50_us"] - srv[name]["p50_us"]
        lines.append(f"{label:<18}{report['baseline'][name]['p50_us']:>9.1f}{trip:>9.1f}"
                     f"{srv[name]['p50_us']:>10.1f}{0:>10.1f}{1:>7.2f}x")
    for op in TABLE_ORDER:
        b = report["breakdown"][op]
        lines.append(f"{op:<18}{report['ops'][op]['p50_us']:>9.1f}{b['round_trip_us']:>9.1f}{b['server_us']:>10.1f}"
                     f"{b['client_us']:>10.1f}{report['ratios'][op]['p50_ratio']:>7.2f}x")
    return lines


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
                        help="unrecorded warm-up rounds (default: samples/10, between 20 and 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--mock", action="store_true", help="use the in-process mock (fakeredis)")
    server.add_argument("--url", help="Redis URL to use (default: REDIS_URL, localhost:6379, else mock)")
    args = parser.parse_args(argv)
    if args.samples < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--samples must be at least 1 and --warmup at least 0")
    memory = None
    try:
        memory = open_memory(args)
        report = run_bench(memory, args.samples, warmup=args.warmup)
    except EmpathyError as exc:  # the library's own message says which server and what to do
        print(f"empathy_os.bench: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        where = memory.url if memory is not None and memory.url else (args.url or "Redis")
        print(f"empathy_os.bench: {where} did not answer ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("empathy_os.bench: interrupted (the bench team's keys were removed)", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report))
    else:
        warmup = default_warmup(args.samples) if args.warmup is None else args.warmup
        print(format_table(report, f" at {memory.url}" if memory.url else "", warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())

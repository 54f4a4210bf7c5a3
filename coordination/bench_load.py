"""``manage.py bench --load``: a bounded load run on one Redis, and the multi-process ceiling.

1. **Mixed**: 200 simulated agents over HTTP (each with its own token and keep-alive connection, one
   asyncio client process) and 8 library processes work one team's queue of a fixed number of tasks
   until it is empty. Reported: tasks per second, claim p50/p99 per kind of agent, and the checks:
   0 lost (every task completed), 0 double-completed (no task id completed twice, and the exact
   ``total_completed`` counter equals the number of tasks), 0 HTTP 5xx.
2. **Processes alone**: 8 library processes claim and complete a fixed number of tasks, beside the raw
   Lua ceiling of the same run: Redis runs scripts one at a time, so it cannot do more than
   1 s / (server time of one claim + one complete) pairs per second (server time from INFO
   commandstats deltas over the phase).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid

from empathy_os import AgentCoordinator, AgentTask
from empathy_os.bench import cleanup, nearest_rank
from empathy_os.loadgen import library_worker

from .bench_http import KeepAlive, claim_complete_loop, forget_tokens, redis_url_of, start_server, stop_server
from .bench_live import free_port
from .servers import DEFAULT_SERVER
from .tokens import issue_token

HTTP_AGENTS = 200
PROCESSES = 8
DEADLINE_SECONDS = 600
TASK_TYPE = "load"


def _add(coordinator, prefix: str, n: int) -> None:
    for start in range(0, n, 1000):
        coordinator.add_tasks(AgentTask(f"{prefix}{i}", TASK_TYPE) for i in range(start, min(n, start + 1000)))


def _us(values, percent):
    value = nearest_rank(values, percent)
    return None if value is None else round(value / 1000, 1)


def _start_workers(url: str, team: str, n: int, prefix: str):
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=library_worker, args=(url, team, f"{prefix}{i}", TASK_TYPE, ready, go, results),
                         daemon=True) for i in range(n)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    return procs, go, results


def _collect(procs, results, deadline: float, progress, log) -> list:
    out, last = [], 0.0
    while len(out) < len(procs):
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise RuntimeError(f"bench --load: the library processes did not finish within {DEADLINE_SECONDS} s")
        try:
            out.append(results.get(timeout=0.5))
        except Exception:  # queue.Empty
            pass
        if time.monotonic() - last >= 1:
            last = time.monotonic()
            log(progress())
    for p in procs:
        p.join(10)
    errors = [e for *_, e in out if e]
    if errors:
        raise RuntimeError(f"bench --load: a library process failed: {errors[0]}")
    return out


def _evalsha_stats(client) -> tuple[int, int]:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return stats.get("usec", 0), stats.get("calls", 0)


async def _http_agents(port: int, tokens: list[str], go, progress, log) -> dict:
    conns = [await KeepAlive.open("127.0.0.1", port) for _ in tokens]
    out = {"claim_ns": [], "statuses": [], "completed": []}
    budget = [10 ** 12]  # bounded by the tasks: each agent stops at its first 204

    async def report():
        while True:
            await asyncio.sleep(1)
            log(progress())

    # Each agent shows its token once before the start, as an agent at work did long ago: the run times
    # agents working, not 200 first lookups of a token in the database.
    signed_in = await asyncio.gather(*(c.request("GET", "/api/v1/me", token=t) for c, t in zip(conns, tokens)))
    if any(status != 200 for status, _ in signed_in):
        raise RuntimeError(f"the agents could not sign in: statuses {sorted({s for s, _ in signed_in})}")
    go.set()
    reporter = asyncio.ensure_future(report())
    try:
        await asyncio.gather(*(claim_complete_loop(c, t, TASK_TYPE, budget, out) for c, t in zip(conns, tokens)))
    finally:
        reporter.cancel()
        for conn in conns:
            await conn.close()
    return out


def run_load_bench(memory, tasks: int = 6000, *, server: str = DEFAULT_SERVER, processes_tasks: int = 8000,
                   log=print) -> dict:
    """Both phases; returns the JSON report (see the module docstring)."""
    if memory.mode != "redis":
        raise RuntimeError("bench --load needs one real Redis (not the mock, not a cluster): "
                           "the server and the workers run in other processes")
    if tasks < 1 or processes_tasks < 1:
        raise ValueError("--tasks must be at least 1")
    url = redis_url_of(memory)
    team = f"bench-load-{uuid.uuid4().hex[:10]}"
    coordinator = AgentCoordinator(memory, team)
    rows = []
    port = free_port()
    log(f"mixed run: {tasks} tasks, {HTTP_AGENTS} HTTP agents ({server}) + {PROCESSES} library processes")
    _add(coordinator, "m", tasks)
    process = start_server(port, url, server)
    tokens = []
    try:
        tokens = [issue_token(f"http-{i:03d}", team, "contributor", created_by="manage.py bench --load")
                  for i in range(HTTP_AGENTS)]
        procs, go, results = _start_workers(url, team, PROCESSES, "lib-")
        deadline = time.monotonic() + DEADLINE_SECONDS

        def progress():
            return f"  {coordinator.aggregate_results()['total_completed']} of {tasks} tasks completed"

        start = time.perf_counter()
        http = asyncio.run(_http_agents(port, [t for t, _ in tokens], go, progress, log))
        lib = _collect(procs, results, deadline, progress, log)
        seconds = time.perf_counter() - start
    finally:
        stop_server(process)
        forget_tokens(memory, [row for _, row in tokens])
    lib_done = [task_id for _, ids, _, _ in lib for task_id in ids]
    lib_claims = [ns for _, _, claims, _ in lib for ns in claims]
    every = http["completed"] + lib_done
    totals = coordinator.aggregate_results()
    counts = coordinator.count_tasks()
    checks = {"lost": tasks - len(set(every)), "double_completed": len(every) - len(set(every)),
              "counter_minus_tasks": totals["total_completed"] - tasks, "left_pending": counts["pending"],
              "left_in_progress": counts["in_progress"], "http_5xx": sum(s >= 500 for s in http["statuses"])}
    rows.append({"who": f"HTTP agents ({server})", "agents": HTTP_AGENTS, "tasks": len(http["completed"]),
                 "tasks_per_s": round(len(http["completed"]) / seconds), "claim_p50_us": _us(http["claim_ns"], 50),
                 "claim_p99_us": _us(http["claim_ns"], 99)})
    rows.append({"who": "library processes", "agents": PROCESSES, "tasks": len(lib_done),
                 "tasks_per_s": round(len(lib_done) / seconds), "claim_p50_us": _us(lib_claims, 50),
                 "claim_p99_us": _us(lib_claims, 99)})
    rows.append({"who": "total", "agents": HTTP_AGENTS + PROCESSES, "tasks": len(every),
                 "tasks_per_s": round(len(every) / seconds), "claim_p50_us": _us(http["claim_ns"] + lib_claims, 50),
                 "claim_p99_us": _us(http["claim_ns"] + lib_claims, 99)})
    mixed = {"tasks": tasks, "seconds": round(seconds, 2), "rows": rows, "checks": checks}

    log(f"processes alone: {processes_tasks} tasks, {PROCESSES} library processes")
    _add(coordinator, "p", processes_tasks)
    procs, go, results = _start_workers(url, team, PROCESSES, "solo-")
    before = _evalsha_stats(memory.client)
    start = time.perf_counter()
    go.set()

    def progress_alone():
        return f"  {coordinator.aggregate_results()['total_completed'] - tasks} of {processes_tasks} tasks completed"

    solo = _collect(procs, results, time.monotonic() + DEADLINE_SECONDS, progress_alone, log)
    seconds_alone = time.perf_counter() - start
    after = _evalsha_stats(memory.client)
    done = sum(len(ids) for _, ids, _, _ in solo)
    cleanup(memory, team)
    calls = max(after[1] - before[1], 1)
    per_script = (after[0] - before[0]) / calls  # claims and completes, about one each per task
    pair_us = 2 * per_script
    alone = {"processes": PROCESSES, "tasks": done, "seconds": round(seconds_alone, 2),
             "claim_complete_per_s": round(done / seconds_alone),
             "server_us_per_script": round(per_script, 1),
             "lua_ceiling_per_s": round(1e6 / pair_us) if pair_us else None}
    alone["share_of_ceiling"] = round(alone["claim_complete_per_s"] / alone["lua_ceiling_per_s"], 2) \
        if alone["lua_ceiling_per_s"] else None
    return {"mode": memory.mode, "server": server, "mixed": mixed, "processes_alone": alone}


def format_load_table(report: dict) -> str:
    m, a = report["mixed"], report["processes_alone"]
    c = m["checks"]
    ok = c["lost"] == 0 and c["double_completed"] == 0 and c["counter_minus_tasks"] == 0 and c["http_5xx"] == 0
    lines = [f"load run: {m['tasks']} tasks on one Redis in {m['seconds']:.2f} s "
             f"({HTTP_AGENTS} HTTP agents on {report['server']} + {PROCESSES} library processes)",
             f"{'who':<26}{'agents':>7}{'tasks':>8}{'tasks/s':>9}{'claim p50 us':>14}{'claim p99 us':>14}"]
    for r in m["rows"]:
        lines.append(f"{r['who']:<26}{r['agents']:>7}{r['tasks']:>8}{r['tasks_per_s']:>9}"
                     f"{r['claim_p50_us'] or 0:>14.1f}{r['claim_p99_us'] or 0:>14.1f}")
    lines.append(f"checks: lost {c['lost']}, double-completed {c['double_completed']}, counter - tasks "
                 f"{c['counter_minus_tasks']}, HTTP 5xx {c['http_5xx']}, left pending {c['left_pending']} / "
                 f"in progress {c['left_in_progress']}: {'OK' if ok else 'FAILED'}")
    lines += ["", f"{a['processes']} library processes alone: {a['tasks']} tasks in {a['seconds']:.2f} s = "
                  f"{a['claim_complete_per_s']:,} claim+complete per second",
              f"raw Lua ceiling of this run: {a['server_us_per_script']} us of server time per script -> "
              f"{a['lua_ceiling_per_s']:,} claim+complete per second at most (one Redis runs one script at a "
              f"time); the processes reached {a['share_of_ceiling']:.0%} of it"]
    return "\n".join(lines)

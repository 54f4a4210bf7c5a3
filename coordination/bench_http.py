"""``manage.py bench --http``: claim and complete over the HTTP API, through a real daphne server.

The server runs in a subprocess on a free port, on the same Redis and database as this process, so
the figures include everything an agent pays: HTTP, token check, the library call and Redis.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid

from django.conf import settings

from empathy_os import AgentCoordinator, AgentTask
from empathy_os.bench import _percentiles, cleanup

from .bench_live import free_port
from .models import AgentToken
from .tokens import issue_token


def _start_server(port: int, redis_url: str) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url)
    env.pop("EMPATHY_REDIS_MOCK", None)
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "empathy_site.asgi:application"], cwd=settings.BASE_DIR, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"daphne did not start: {server.stderr.read().decode()[-2000:]}")


def _timed(conn, method: str, path: str, body, headers, expect: int) -> int:
    payload = None if body is None else json.dumps(body)
    start = time.perf_counter_ns()
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter_ns() - start
    if response.status != expect:
        raise RuntimeError(f"{method} {path} answered {response.status}, expected {expect}")
    return elapsed


def run_http_bench(memory, samples: int = 500, log=print) -> dict:
    """Time health, claim and complete over HTTP; returns {"mode", "baseline", "ops"} like the library bench."""
    if memory.mode == "mock":
        raise RuntimeError("bench --http needs a Redis: the server runs in another process (set REDIS_URL)")
    team = f"bench-http-{uuid.uuid4().hex[:10]}"
    agent = "bench-agent"
    token, row = issue_token(agent, team, "contributor", created_by="manage.py bench")
    coordinator = AgentCoordinator(memory, team)
    warmup = max(20, samples // 10)
    total = samples + warmup
    for start in range(0, total, 500):
        coordinator.add_tasks(AgentTask(f"h{i}", "bench", priority=5) for i in range(start, min(total, start + 500)))
    port = free_port()
    redis_url = memory.client.connection_pool.connection_kwargs
    url = f"redis://{redis_url.get('host', 'localhost')}:{redis_url.get('port', 6379)}/{redis_url.get('db', 0)}"
    if redis_url.get("password"):
        url = f"redis://:{redis_url['password']}@{url[len('redis://'):]}"
    log(f"starting daphne on 127.0.0.1:{port} ...")
    server = _start_server(port, os.environ.get("REDIS_URL") or url)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        health, claim, complete, ping = [], [], [], []
        for i in range(total):
            keep = i >= warmup
            t0 = time.perf_counter_ns()
            memory.client.ping()
            t_ping = time.perf_counter_ns() - t0
            t_health = _timed(conn, "GET", "/api/v1/health", None, {}, 200)
            t_claim = _timed(conn, "POST", "/api/v1/tasks/claim", {"task_type": "bench"}, headers, 200)
            t_complete = _timed(conn, "POST", f"/api/v1/tasks/h{i}/complete", {"result": {"i": i}}, headers, 200)
            if keep:
                ping.append(t_ping)
                health.append(t_health)
                claim.append(t_claim)
                complete.append(t_complete)
    finally:
        server.terminate()
        server.wait(10)
        AgentToken.objects.filter(pk=row.pk).delete()
        cleanup(memory, team)
    return {"mode": memory.mode, "samples": samples,
            "baseline": {"redis_ping": _percentiles(ping), "http_health": _percentiles(health)},
            "ops": {"http_claim_task": _percentiles(claim), "http_complete_task": _percentiles(complete)}}


def format_http_table(report: dict) -> str:
    lines = [f"HTTP API benchmark ({report['mode']}, {report['samples']} samples, one keep-alive connection)",
             f"{'operation':<22}{'p50 µs':>10}{'p99 µs':>10}"]
    for group in ("baseline", "ops"):
        for name, figures in report[group].items():
            lines.append(f"{name:<22}{figures['p50_us']:>10.1f}{figures['p99_us']:>10.1f}")
    claim = report["ops"]["http_claim_task"]["p50_us"]
    lines.append(f"claim over HTTP p50: {claim / 1000:.2f} ms (target: under 3 ms)")
    return "\n".join(lines)

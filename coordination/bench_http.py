"""``manage.py bench --http``: the agent HTTP API through a real server (daphne or uvicorn).

The server runs in a subprocess on a free port, on the same Redis and database as this process, so
the figures include everything an agent pays: HTTP, token check, the library call and Redis.
Two parts, both bounded (a fixed number of requests; the run stops by itself):

1. latency, one keep-alive connection: health, claim, complete, beside a raw Redis PING from this
   process in the same rounds (the ratio of HTTP claim p50 to that round trip is the target);
2. throughput: claim + complete requests per second with 1 and with 50 concurrent keep-alive
   clients (an asyncio HTTP/1.1 client, so the bench itself is not the bottleneck).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import time
import uuid

from django.conf import settings

from empathy_os import AgentCoordinator, AgentTask
from empathy_os.bench import _percentiles, cleanup, nearest_rank

from . import servers
from .bench_live import free_port
from .models import AgentToken
from .servers import DEFAULT_SERVER
from .tokens import TOKEN_CACHE_SECONDS, issue_token

#: HTTP claim p50 at most this many raw Redis round trips (PING p50 of the same run).
HTTP_RATIO_TARGET = 4.0
THROUGHPUT_CLIENTS = (1, 50)


def start_server(port: int, redis_url: str, server: str = DEFAULT_SERVER) -> subprocess.Popen:
    """Start ``server`` on 127.0.0.1:``port`` over ``redis_url``; returns once /api/v1/health answers."""
    env = dict(os.environ, REDIS_URL=redis_url)
    env.pop("EMPATHY_REDIS_MOCK", None)
    process = subprocess.Popen(servers.command(server, "127.0.0.1", port), cwd=settings.BASE_DIR, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{server} did not start: {process.stderr.read().decode()[-2000:]}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def redis_url_of(memory) -> str:
    """The URL of the memory's Redis, for a server process (REDIS_URL wins when set)."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    kw = memory.client.connection_pool.connection_kwargs
    auth = f":{kw['password']}@" if kw.get("password") else ""
    return f"redis://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def forget_tokens(memory, rows) -> None:
    """Delete the bench's token rows and their cached credentials (a deleted token must not work on)."""
    AgentToken.objects.filter(pk__in=[row.pk for row in rows]).delete()
    memory.revoke_cached_credentials([row.token_hash for row in rows], TOKEN_CACHE_SECONDS)


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


class KeepAlive:
    """A minimal asyncio HTTP/1.1 client on one keep-alive connection (Content-Length or chunked)."""

    def __init__(self, reader, writer, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> "KeepAlive":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def request(self, method: str, path: str, body=None, token: str = "") -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "")
                + "\r\n")
        self.writer.write(head.encode() + payload)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length) if length else b""
        data = b""
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            data += (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readline()
        return status, data

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def claim_complete_loop(conn: KeepAlive, token: str, task_type: str, budget: list, out: dict) -> None:
    """Claim and complete over ``conn`` while ``budget[0]`` (requests left, shared) lasts and tasks remain.
    Records claim latencies (ns), completed ids and statuses in ``out``."""
    while budget[0] > 0:
        budget[0] -= 2
        t0 = time.perf_counter_ns()
        status, body = await conn.request("POST", "/api/v1/tasks/claim", {"task_type": task_type}, token)
        out["claim_ns"].append(time.perf_counter_ns() - t0)
        out["statuses"].append(status)
        if status == 204:
            return
        if status != 200:
            continue
        task = json.loads(body)
        status, _ = await conn.request("POST", f"/api/v1/tasks/{task['task_id']}/complete",
                                       {"result": {"ok": True}, "lease_token": task["lease_token"]}, token)
        out["statuses"].append(status)
        if status == 200:
            out["completed"].append(task["task_id"])


async def _throughput(port: int, tokens: list[str], task_type: str, requests: int) -> dict:
    conns = [await KeepAlive.open("127.0.0.1", port) for _ in tokens]
    out = {"claim_ns": [], "statuses": [], "completed": []}
    budget = [requests]
    start = time.perf_counter()
    try:
        await asyncio.gather(*(claim_complete_loop(c, t, task_type, budget, out) for c, t in zip(conns, tokens)))
    finally:
        seconds = time.perf_counter() - start
        for conn in conns:
            await conn.close()
    claims = out["claim_ns"]
    return {"clients": len(tokens), "requests": len(out["statuses"]), "seconds": round(seconds, 3),
            "requests_per_s": round(len(out["statuses"]) / seconds), "tasks_per_s": round(len(out["completed"]) / seconds),
            "claim_p50_us": round(nearest_rank(claims, 50) / 1000, 1), "claim_p99_us": round(nearest_rank(claims, 99) / 1000, 1),
            "errors_5xx": sum(s >= 500 for s in out["statuses"]), "completed": len(out["completed"])}


def run_http_bench(memory, samples: int = 500, *, server: str = DEFAULT_SERVER, throughput_requests: int = 2000,
                   log=print) -> dict:
    """Latency (one connection) and throughput (1 and 50 clients) over HTTP; returns the JSON report."""
    if memory.mode == "mock":
        raise RuntimeError("bench --http needs a Redis: the server runs in another process (set REDIS_URL)")
    servers.check(server)  # a bad name fails before anything starts
    team = f"bench-http-{uuid.uuid4().hex[:10]}"
    agent = "bench-agent"
    token, row = issue_token(agent, team, "contributor", created_by="manage.py bench")
    coordinator = AgentCoordinator(memory, team)
    warmup = max(20, samples // 10)
    total = samples + warmup
    for start in range(0, total, 500):
        coordinator.add_tasks(AgentTask(f"h{i}", "bench", priority=5) for i in range(start, min(total, start + 500)))
    port = free_port()
    log(f"starting {server} on 127.0.0.1:{port} ...")
    process = start_server(port, redis_url_of(memory), server)
    try:
        log(f"latency: {total} rounds of PING, health, claim, complete on one keep-alive connection ...")
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
        conn.close()
        throughput = []
        for clients in THROUGHPUT_CLIENTS:
            task_type = f"rps{clients}"
            n_tasks = throughput_requests // 2
            for start in range(0, n_tasks, 500):
                coordinator.add_tasks(AgentTask(f"r{clients}-{i}", task_type) for i in range(start, min(n_tasks, start + 500)))
            log(f"throughput: {throughput_requests} requests (claim + complete) from {clients} keep-alive client(s) ...")
            throughput.append(asyncio.run(_throughput(port, [token] * clients, task_type, throughput_requests)))
    finally:
        stop_server(process)
        forget_tokens(memory, [row])
        cleanup(memory, team)
    ops = {"http_claim_task": _percentiles(claim), "http_complete_task": _percentiles(complete)}
    baseline = {"redis_ping": _percentiles(ping), "http_health": _percentiles(health)}
    ratio = round(ops["http_claim_task"]["p50_us"] / max(baseline["redis_ping"]["p50_us"], 0.1), 2)
    return {"mode": memory.mode, "server": server, "samples": samples, "baseline": baseline, "ops": ops,
            "claim_ratio": {"p50_ratio": ratio, "baseline": "redis_ping", "target": HTTP_RATIO_TARGET},
            "throughput": throughput}


def format_http_table(report: dict) -> str:
    lines = [f"HTTP API benchmark ({report['server']}, {report['mode']}, {report['samples']} samples, "
             "one keep-alive connection)",
             f"{'operation':<22}{'p50 us':>10}{'p99 us':>10}"]
    for group in ("baseline", "ops"):
        for name, figures in report[group].items():
            lines.append(f"{name:<22}{figures['p50_us']:>10.1f}{figures['p99_us']:>10.1f}")
    claim, r = report["ops"]["http_claim_task"]["p50_us"], report["claim_ratio"]
    met = "met" if r["p50_ratio"] <= r["target"] else "MISSED"
    lines.append(f"claim over HTTP p50: {claim / 1000:.2f} ms = {r['p50_ratio']:.2f}x the raw Redis round trip "
                 f"(PING p50 of this run); target <= {r['target']:.0f}x: {met}")
    lines += ["", "throughput: claim + complete requests, concurrent keep-alive clients (bounded run)",
              f"{'clients':>8}{'requests':>10}{'seconds':>9}{'req/s':>8}{'tasks/s':>9}{'claim p50 us':>14}"
              f"{'claim p99 us':>14}{'5xx':>5}"]
    for t in report["throughput"]:
        lines.append(f"{t['clients']:>8}{t['requests']:>10}{t['seconds']:>9.2f}{t['requests_per_s']:>8}"
                     f"{t['tasks_per_s']:>9}{t['claim_p50_us']:>14.1f}{t['claim_p99_us']:>14.1f}{t['errors_5xx']:>5}")
    return "\n".join(lines)

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
import socket
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


#: The do-nothing application served beside the site: the server's own cost per request.
NOOP_APPLICATION = "coordination.noop_asgi:application"


def start_server(port: int, redis_url: str, server: str = DEFAULT_SERVER,
                 application: str = servers.APPLICATION) -> subprocess.Popen:
    """Start ``server`` on 127.0.0.1:``port`` over ``redis_url``; returns once /api/v1/health answers."""
    env = dict(os.environ, REDIS_URL=redis_url)
    env.pop("EMPATHY_REDIS_MOCK", None)
    process = subprocess.Popen(servers.command(server, "127.0.0.1", port, application=application),
                               cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def _request_bytes(host: str, method: str, path: str, body, token: str) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n")
    return head.encode() + payload


def _response():
    """Read one HTTP/1.1 response (Content-Length or chunked), written once for both clients below: a
    generator that yields ``None`` for the next line or ``n`` for the next n bytes, is sent what it
    asked for, and returns ``(status, body)``."""
    status = int((yield None).split(b" ", 2)[1])
    length, chunked = 0, False
    while (line := (yield None)) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, (yield length) if length else b""
    data = b""
    while size := int((yield None).split(b";")[0], 16):
        data += (yield size + 2)[:-2]
    yield None
    return status, data


class RawConnection:
    """A minimal blocking HTTP/1.1 client on one keep-alive connection, for timing the server: a request
    is one ``sendall`` and the reads of its answer. (``http.client`` costs the client about one Redis
    round trip more per request on the machine of docs/benchmarks.md: time no server spends.)"""

    def __init__(self, host: str, port: int, timeout: float = 10):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def request(self, method: str, path: str, body=None, token: str = "") -> tuple[int, bytes]:
        self.sock.sendall(_request_bytes(self.host, method, path, body, token))
        reader = _response()
        try:
            want = next(reader)
            while True:
                want = reader.send(self.file.readline() if want is None else self.file.read(want))
        except StopIteration as done:
            return done.value

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _timed_ping(memory) -> int:
    start = time.perf_counter_ns()
    memory.client.ping()
    return time.perf_counter_ns() - start


def _timed(conn: RawConnection, method: str, path: str, body, token: str, expect: int) -> int:
    start = time.perf_counter_ns()
    status, _ = conn.request(method, path, body, token)
    elapsed = time.perf_counter_ns() - start
    if status != expect:
        raise RuntimeError(f"{method} {path} answered {status}, expected {expect}")
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
        self.writer.write(_request_bytes(self.host, method, path, body, token))
        reader = _response()
        try:
            want = next(reader)
            while True:
                want = reader.send(await (self.reader.readline() if want is None else self.reader.readexactly(want)))
        except StopIteration as done:
            return done.value

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
    port, noop_port = free_port(), free_port()
    log(f"starting {server} on 127.0.0.1:{port} (the site) and :{noop_port} (a no-op application) ...")
    process = start_server(port, redis_url_of(memory), server)
    try:
        noop_process = start_server(noop_port, redis_url_of(memory), server, NOOP_APPLICATION)
    except BaseException:
        stop_server(process)
        raise
    try:
        log(f"latency: {total} rounds of PING, no-op, claim, complete on keep-alive connections, then {total} of "
            "PING, health ...")
        conn, noop_conn = RawConnection("127.0.0.1", port), RawConnection("127.0.0.1", noop_port)
        health, claim, complete, ping, ping_health, noop, noop_redis = [], [], [], [], [], [], []
        for i in range(total):
            t_ping = _timed_ping(memory)
            t_noop = _timed(noop_conn, "POST", "/api/v1/tasks/claim", {"task_type": "bench"}, token, 200)
            t_noop_redis = _timed(noop_conn, "POST", "/redis", {"task_type": "bench"}, token, 200)
            t_claim = _timed(conn, "POST", "/api/v1/tasks/claim", {"task_type": "bench"}, token, 200)
            t_complete = _timed(conn, "POST", f"/api/v1/tasks/h{i}/complete", {"result": {"i": i}}, token, 200)
            if i >= warmup:
                ping.append(t_ping)
                noop.append(t_noop)
                noop_redis.append(t_noop_redis)
                claim.append(t_claim)
                complete.append(t_complete)
        # Health goes through Django, which finishes each request in a thread after its answer is sent:
        # interleaved with the claims, that leftover work would be timed on the next claim.
        for i in range(total):
            t_ping = _timed_ping(memory)
            t_health = _timed(conn, "GET", "/api/v1/health", None, "", 200)
            if i >= warmup:
                ping_health.append(t_ping)
                health.append(t_health)
        conn.close()
        noop_conn.close()
        throughput = []
        for clients in THROUGHPUT_CLIENTS:
            task_type = f"rps{clients}"
            n_tasks = throughput_requests // 2
            for start in range(0, n_tasks, 500):
                coordinator.add_tasks(AgentTask(f"r{clients}-{i}", task_type) for i in range(start, min(n_tasks, start + 500)))
            log(f"throughput: {throughput_requests} requests (claim + complete) from {clients} keep-alive client(s) ...")
            throughput.append(asyncio.run(_throughput(port, [token] * clients, task_type, throughput_requests)))
    finally:
        stop_server(noop_process)
        stop_server(process)
        forget_tokens(memory, [row])
        cleanup(memory, team)
    ops = {"http_claim_task": _percentiles(claim), "http_complete_task": _percentiles(complete)}
    baseline = {"redis_ping": _percentiles(ping), "http_noop": _percentiles(noop),
                "http_noop_redis_ping": _percentiles(noop_redis), "http_health": _percentiles(health),
                "redis_ping_beside_health": _percentiles(ping_health)}
    trip = max(baseline["redis_ping"]["p50_us"], 0.1)
    ratio = round(ops["http_claim_task"]["p50_us"] / trip, 2)
    return {"mode": memory.mode, "server": server, "samples": samples, "baseline": baseline, "ops": ops,
            "claim_ratio": {"p50_ratio": ratio, "baseline": "redis_ping", "target": HTTP_RATIO_TARGET,
                            "server_floor_ratio": round(baseline["http_noop"]["p50_us"] / trip, 2),
                            "redis_floor_ratio": round(baseline["http_noop_redis_ping"]["p50_us"] / trip, 2)},
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
    noop = report["baseline"]["http_noop"]["p50_us"]
    lines.append(f"claim over HTTP p50: {claim / 1000:.2f} ms = {r['p50_ratio']:.2f}x the raw Redis round trip "
                 f"(PING p50 of this run); target <= {r['target']:.0f}x: {met}")
    floor = report["baseline"]["http_noop_redis_ping"]["p50_us"]
    lines.append(f"floors (a no-op application on the same server, same rounds): answering at once {noop:.1f} us = "
                 f"{r['server_floor_ratio']:.2f}x; after one Redis PING {floor:.1f} us = {r['redis_floor_ratio']:.2f}x; "
                 f"the claim adds {claim - floor:.1f} us = {r['p50_ratio'] - r['redis_floor_ratio']:.2f}x over the latter "
                 "(its script's time in Redis, and the API)")
    lines += ["", "throughput: claim + complete requests, concurrent keep-alive clients (bounded run)",
              f"{'clients':>8}{'requests':>10}{'seconds':>9}{'req/s':>8}{'tasks/s':>9}{'claim p50 us':>14}"
              f"{'claim p99 us':>14}{'5xx':>5}"]
    for t in report["throughput"]:
        lines.append(f"{t['clients']:>8}{t['requests']:>10}{t['seconds']:>9.2f}{t['requests_per_s']:>8}"
                     f"{t['tasks_per_s']:>9}{t['claim_p50_us']:>14.1f}{t['claim_p99_us']:>14.1f}{t['errors_5xx']:>5}")
    return "\n".join(lines)

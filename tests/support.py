"""Test support: a private redis-server on a free port (never the machine's 6379), a Redis Cluster,
a private PostgreSQL (never the machine's 5432), ``wait_until``, ``redis_calls`` (round trips counted),
people of a tier (``tier_user``, ``logged_in``), a JSON client for the agent API (``Api``,
``assert_error``), and the site served by uvicorn in a thread (``ThreadedSite``)."""

from __future__ import annotations

import json as jsonlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import redis


def wait_until(condition, timeout: float = 5.0, interval: float = 0.01, message="condition not met in time"):
    """Poll ``condition`` until it returns something truthy (returned); fail the test after ``timeout``
    saying ``message`` (a string, or a callable called then: the state it saw)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, message() if callable(message) else message
        time.sleep(interval)

@contextmanager
def redis_calls(client):
    """Count the round trips ``client`` (redis-py, fakeredis or a cluster client) makes inside the block:
    yields a list that gets each command sent alone (its name) and ``"PIPELINE"`` per pipeline executed."""
    calls: list[str] = []
    send, make_pipeline = client.execute_command, client.pipeline

    def execute_command(*args, **options):
        calls.append(str(args[0]).upper())
        return send(*args, **options)

    def pipeline(*args, **options):
        pipe = make_pipeline(*args, **options)
        run = pipe.execute

        def execute(*a, **kw):
            calls.append("PIPELINE")
            return run(*a, **kw)

        pipe.execute = execute
        return pipe

    client.execute_command, client.pipeline = execute_command, pipeline
    try:
        yield calls
    finally:
        del client.execute_command, client.pipeline


def busy_team(memory, team: str) -> None:
    """A team with finished tasks (two completed, one failed), a pending one, an agent with an inbox
    and a staged pattern: every figure of the team list and the metrics page."""
    from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, StagedPattern

    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("worker", ["review"])
    coordinator.add_tasks([AgentTask(f"task-{i}", "review") for i in range(4)])
    for i in range(3):
        task = coordinator.claim_task("worker")
        if i < 2:
            coordinator.complete_task(task.task_id, {"ok": True})
        else:
            coordinator.fail_task(task.task_id, "broken input")
    sender = AgentCredentials("worker", AccessTier.CONTRIBUTOR, team)
    memory.send_signal(sender, "ping", {"n": 1}, target_agent="worker")
    memory.stage_pattern(sender, StagedPattern("staged_1", "worker", "optimization", "Staged", code="x()"))


def review_lock_holder(memory, credentials, pattern_id: str) -> str | None:
    """Who holds the review lock of one of the team's staged patterns (None: nobody)."""
    from empathy_os import get_review_locks

    lock = get_review_locks(memory, credentials, [pattern_id]).get(pattern_id)
    return lock.holder if lock else None


def calls_per_render(memory, render, sizes=(1, 12)) -> dict:
    """``{n: (Redis calls, what render() returned)}`` with ``n`` busy teams (:func:`busy_team`), for each n."""
    out, made = {}, 0
    for n in sizes:
        while made < n:
            busy_team(memory, f"team{made}")
            made += 1
        with redis_calls(memory.client) as calls:
            out[n] = (calls, render())
    return out


def expected_overview_calls(memory) -> list[str]:
    """What one read of every team costs (``empathy_os.overview``): the team index, the teams' figures,
    their inboxes and recent tasks (one pipeline each), DBSIZE, and INFO (not in mock mode)."""
    return ["PIPELINE", "PIPELINE", "PIPELINE", "DBSIZE", *(["INFO"] if memory.mode != "mock" else [])]


def tier_user(username: str, tier: str | None):
    """A new Django user in the group of ``tier`` ("observer", ... "steward"; None: in no tier group)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username)
    if tier is not None:
        user.groups.add(Group.objects.get_or_create(name=tier.capitalize())[0])
    return user


def logged_in(user, **client_options):
    """A Django test client logged in as ``user``."""
    from django.test import Client

    client = Client(**client_options)
    client.force_login(user)
    return client


#: Where the agent API lives; ``Api`` paths are relative to it unless they start with /api/.
API = "/api/v1"


def _token_of(token) -> str | None:
    if token is None or isinstance(token, str):
        return token
    return token.token


class Api:
    """A JSON client for the agent API. Paths are relative to /api/v1 unless they start with /api/.

    ``token`` is a token string or an :class:`Agent`; ``json`` is sent as the JSON body; ``data`` is
    sent as is (bytes or str), for malformed bodies; ``headers`` are extra request headers.
    """

    def __init__(self, client=None):
        from django.test import Client

        self.client = client or Client(raise_request_exception=False)

    def url(self, path: str) -> str:
        return path if path.startswith("/api/") else API + path

    def request(self, method: str, path: str, json=None, *, token=None, data=None, headers=None,
                content_type: str = "application/json", **environ):
        """``environ``: WSGI variables of the request as they are (``REMOTE_ADDR=...``)."""
        extra = dict(environ)
        token = _token_of(token)
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        if data is None and json is not None:
            data = jsonlib.dumps(json)
        call = getattr(self.client, method.lower())
        if method.upper() in ("GET", "HEAD"):
            return call(self.url(path), **extra)
        return call(self.url(path), data if data is not None else b"", content_type=content_type, **extra)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.request("PUT", path, json, **kwargs)

    def delete(self, path, json=None, **kwargs):
        return self.request("DELETE", path, json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json, **kwargs)


async def asgi_request(app, method: str, path: str, body: bytes = b"", headers=()) -> dict:
    """One HTTP request through the ASGI ``app`` (asgiref's communicator), ending with the client's
    disconnect: ``{"status", "headers" (the raw list), "body" (bytes)}``."""
    from asgiref.testing import ApplicationCommunicator

    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "scheme": "http", "server": ("localhost", 80), "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"localhost"), *headers]}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(5)
    parts = []
    while True:
        message = await communicator.receive_output(5)
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)
    return {"status": start["status"], "headers": start["headers"], "body": b"".join(parts)}


def assert_error(response, status, code: str | None = None) -> dict:
    """``response`` has ``status`` (or one of a set of them) and the API's JSON error body; returns the body."""
    statuses = status if isinstance(status, (set, frozenset, tuple)) else {status}
    assert response.status_code in statuses, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run ./setup.sh (it installs redis-server)")
    return binary


class RedisServer:
    """A ``redis-server`` process of the test session's own, stopped by :meth:`stop`.

    Subclasses that start it differently override :meth:`command` (port and directory are set)."""

    def __init__(self, *extra_args: str):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="empathy-redis-")
        self.args = self.command(*extra_args)
        self.process = None
        self.start()

    def command(self, *extra_args: str) -> list[str]:
        return [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, *extra_args]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> str:
        """Empty its database; returns its URL."""
        client = redis.Redis.from_url(self.url)
        client.flushdb()
        client.close()
        return self.url

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterServer:
    """A local Redis Cluster of the test session's own: ``masters`` cluster-enabled ``redis-server``
    processes on free ports, joined with ``redis-cli --cluster create`` (no replicas), stopped by
    :meth:`stop`. Each node keeps its ``nodes.conf`` in its own temporary directory."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 5000):
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: run ./setup.sh (Debian's redis-server brings redis-tools)")
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(masters):
                # The bus port is set apart: the default (port + 10000) overflows for ports above 55535.
                self.nodes.append(RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                              "--cluster-port", str(free_port()),
                                              "--cluster-node-timeout", str(node_timeout_ms)))
            self._create(cli)
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The library's cluster URL (any node will do: the client discovers the others)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def _create(self, cli: str) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        done = subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says ``cluster_state:ok`` and knows every other node (slots are all served)."""
        deadline = time.monotonic() + timeout
        clients = [redis.Redis(port=node.port, socket_connect_timeout=0.5, decode_responses=True)
                   for node in self.nodes]
        try:
            while True:
                infos = [client.cluster("info") for client in clients]
                if all(info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(self.nodes)
                       for info in infos):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach cluster_state:ok: {infos}")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def flush(self) -> None:
        """FLUSHALL on every master (the cluster client sends it to each primary)."""
        from redis.cluster import RedisCluster

        client = RedisCluster(host="127.0.0.1", port=self.nodes[0].port)
        try:
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        finally:
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class ThreadedSite:
    """The site's ASGI application (``empathy_site.asgi``: API, ``/mcp``, pages) served by a real uvicorn
    on a free port, in a thread of the test process: it serves the test's memory (set with
    ``coordination.memory.memory_in_use``) and the test's database (its tokens), so clients in other
    processes (examples, MCP clients) meet real HTTP on both backends. Stopped by :meth:`stop`."""

    def __init__(self):
        import uvicorn

        from empathy_site.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(application, host="127.0.0.1", port=self.port, lifespan="off", ws="none",
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="site-under-test", daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=30)
        if not self.server.started:
            raise RuntimeError(f"uvicorn did not start on port {self.port}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run ./setup.sh (it installs postgresql)")
    return str(versions[-1])


class PostgresServer:
    """A PostgreSQL server of the test session's own (never the machine's service on 5432): ``initdb``
    into a temporary directory, ``pg_ctl start`` on a free port, listening only on a unix socket in that
    directory, trust authentication for the superuser ``empathy``; :meth:`stop` stops it and removes
    the directory.

    PostgreSQL refuses to run as root: as root, the directory is given to the ``postgres`` user
    (Debian's package creates it) and the server programs run as that user (``runuser``)."""

    USER = "empathy"

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="empathy-postgres-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        try:
            self._run(postgres_bin("initdb"), "-D", str(self.data), "-U", self.USER, "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
            self.start()
        except BaseException:
            self.stop()
            raise

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    @property
    def host(self) -> str:
        """The directory of the server's unix socket (what libpq takes as a host)."""
        return str(self.dir)

    def settings(self, name: str = "empathy") -> dict:
        """Django ``DATABASES`` entries that reach this server (database ``name``)."""
        return {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": self.USER, "PASSWORD": "",
                "HOST": self.host, "PORT": str(self.port)}

    def url(self, name: str = "empathy") -> str:
        """A ``DATABASE_URL`` for database ``name`` of this server (the socket directory, percent-encoded, as host)."""
        return f"postgres://{self.USER}@{quote(self.host, safe='')}:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by the superuser); returns its ``DATABASE_URL``."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.USER, dbname=dbname, autocommit=True) as conn:
            conn.execute(sql)

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it accepts connections."""
        self._run(postgres_bin("pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' -p {self.port} "
                        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(postgres_bin("pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
            except RuntimeError:
                self._run(postgres_bin("pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.dir, ignore_errors=True)

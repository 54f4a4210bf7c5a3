"""Test support: a private redis-server on a free port (never the machine's 6379), a Redis Cluster,
``wait_until``, people of a tier (``tier_user``, ``logged_in``), and the site served by uvicorn in a
thread (``ThreadedSite``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time

import redis


def wait_until(condition, timeout: float = 5.0, interval: float = 0.01):
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)

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

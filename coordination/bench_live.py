"""``manage.py bench --live``: from a library change to the browser's DOM, with many dashboards open.

The real site runs in a subprocess on a free port, served by daphne or uvicorn (``--server``) on
the production path (``DJANGO_DEBUG=0`` after ``collectstatic``; ``SiteServer``), with a throwaway
SQLite database and a throwaway observer, on the Redis under test. Headless Chromium opens one real team dashboard (htmx + its ws extension) and, in a
second page of the same session, ``sockets - 1`` more WebSockets to the same dashboard URL, so the
server renders every event for ``sockets`` consumers.

Each sample: this process tells the page which element to watch for (a MutationObserver keyed by
task id), notes the wall-clock time, makes one change through the library (add, claim or complete
a task), and the page records the time the element appeared where it belongs
(``performance.timeOrigin + performance.now()``). Both clocks are the machine's wall clock; the
offset between them is measured (the smallest of several round trips) and taken out.

The bench writes only in a team of its own (``bench-live-<hex>``) and deletes that team's keys
afterwards (``empathy_os.bench.cleanup``): safe on a shared Redis, nothing is flushed.
The browser tests reuse :class:`SiteServer`, :func:`launch_chromium` and :func:`log_in`.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings

from coordination import servers
from empathy_os import AgentCoordinator, AgentTask, RedisShortTermMemory
from empathy_os.bench import cleanup, nearest_rank

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: The issue's targets for event -> DOM on a local Redis with 100 dashboard WebSockets open.
TARGET_P50_MS = 30.0
TARGET_P99_MS = 100.0
#: How long one change may take to reach the page before the bench gives up (ms).
SAMPLE_TIMEOUT_MS = 10_000

#: Recorded by every page: ``htmx:wsOpen`` and ``htmx:wsAfterMessage`` counts (see wait_live).
WS_PROBE_JS = """
document.addEventListener('htmx:wsOpen', () => { window.__wsOpen = (window.__wsOpen || 0) + 1; });
document.addEventListener('htmx:wsAfterMessage', () => { window.__wsMessages = (window.__wsMessages || 0) + 1; });
"""

#: Installed in the measured page: records when each awaited selector first matches.
OBSERVER_JS = """
() => {
  window.__want = new Map();
  window.__seen = {};
  window.__waiters = {};
  new MutationObserver(() => {
    if (!window.__want.size) return;
    const t = performance.timeOrigin + performance.now();
    for (const [key, selector] of window.__want) {
      if (!document.querySelector(selector)) continue;
      window.__seen[key] = t;
      window.__want.delete(key);
      if (window.__waiters[key]) window.__waiters[key](t);
    }
  }).observe(document.body, {childList: true, subtree: true, attributes: true, characterData: true});
}
"""

WATCH_JS = """
([key, selector]) => {
  if (document.querySelector(selector)) return false;
  window.__want.set(key, selector);
  return true;
}
"""

#: Resolves when the observer saw the key's selector match (no polling).
SEEN_JS = """
([key, timeoutMs]) => window.__seen[key] !== undefined ? window.__seen[key] : new Promise((resolve, reject) => {
  window.__waiters[key] = resolve;
  setTimeout(() => reject(new Error(key + ' not seen')), timeoutMs);
})
"""

OPEN_SOCKETS_JS = """
async ([url, n]) => {
  window.__benchSockets = [];
  const opened = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url);
    ws.messages = 0;
    ws.onmessage = () => { ws.messages++; };
    window.__benchSockets.push(ws);
    opened.push(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onclose = (e) => reject(new Error('WebSocket closed before it opened: code ' + e.code));
    }));
  }
  await Promise.all(opened);
  for (const ws of window.__benchSockets) ws.onclose = () => { window.__benchClosed = (window.__benchClosed || 0) + 1; };
  return window.__benchSockets.length;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_chromium(playwright):
    """Debian's Chromium, headless (``playwright install`` cannot download browsers here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def log_in(page, username: str, password: str) -> None:
    """Log in through the login form (the page may be anywhere on the site)."""
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    if "/accounts/login/" in page.url:
        raise RuntimeError(f"logging in as {username} failed")


def wait_live(page, timeout_ms: float = SAMPLE_TIMEOUT_MS) -> None:
    """Wait until the page's htmx WebSocket is open and its first message (the snapshot) is swapped in.

    Needs WS_PROBE_JS as an init script of the page's context."""
    page.wait_for_function("() => window.__wsOpen > 0 && window.__wsMessages > 0", timeout=timeout_ms)


class SiteServer:
    """The site in a subprocess on a free port, with a database of its own, on the given Redis.

    ``server`` None: ``runserver`` in DEBUG (development); ``"daphne"`` or ``"uvicorn"``: the
    production path, ``DJANGO_DEBUG=0`` after ``collectstatic``, served by that server alone
    (``coordination.servers.command``). ``users`` maps user names to tiers; they all get ``password``. Server output goes to
    ``<dir>/server.log`` (its tail is in the error if the server does not start).
    """

    def __init__(self, redis_url: str, users: dict[str, str], password: str, server: str | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="empathy-site-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = server
        self.env = dict(os.environ, REDIS_URL=redis_url, EMPATHY_DB_PATH=str(self.dir / "db.sqlite3"),
                        DJANGO_DEBUG="1", EMPATHY_EMBEDDED_RELAY="1", PYTHONUNBUFFERED="1")
        if server is not None:
            # The production path: DEBUG off, static files collected and served by the site itself.
            self.env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
                            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
                            EMPATHY_STATIC_ROOT=str(self.dir / "static"))
        for name in ("EMPATHY_REDIS_MOCK", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL"):
            self.env.pop(name, None)  # the tests' own process runs in mock mode
        self.process = None
        self.log_path = self.dir / "server.log"
        try:
            self._manage("migrate", "--no-input", "-v", "0")
            if server is not None:
                self._manage("collectstatic", "--no-input", "-v", "0")
            for name, tier in users.items():
                self._manage("create_user", name, "--tier", tier, "--password-stdin", stdin=password + "\n")
            self._start()
        except BaseException:
            self.stop()
            raise

    def _manage(self, *args: str, stdin: str | None = None) -> None:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")

    def _start(self) -> None:
        with open(self.log_path, "wb") as log:
            command = ([sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"]
                       if self.server is None else servers.command(self.server, "127.0.0.1", self.port))
            self.process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", "/api/v1/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the site did not start on port {self.port}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _percentiles_ms(values: list[float]) -> dict:
    return {"p50_ms": round(nearest_rank(values, 50), 2), "p99_ms": round(nearest_rank(values, 99), 2),
            "max_ms": round(max(values), 2)}


def _clock_offset_ms(page, rounds: int = 15) -> tuple[float, float]:
    """(browser clock - this process's clock, uncertainty) in ms, from the tightest of ``rounds`` round trips."""
    best = None
    for _ in range(rounds):
        before = time.time() * 1000
        browser = page.evaluate("performance.timeOrigin + performance.now()")
        after = time.time() * 1000
        if best is None or after - before < best[1]:
            best = (browser - (before + after) / 2, after - before)
    return round(best[0], 3), round(best[1] / 2, 3)


class _Sampler:
    """One change through the library, timed from just before the call to the DOM."""

    def __init__(self, page, offset_ms: float):
        self.page = page
        self.offset_ms = offset_ms

    def measure(self, key: str, selector: str, change) -> float:
        if not self.page.evaluate(WATCH_JS, [key, selector]):
            raise RuntimeError(f"{selector} matched before the change")
        start = time.time() * 1000
        change()
        try:
            seen = self.page.evaluate(SEEN_JS, [key, SAMPLE_TIMEOUT_MS])
        except Exception as exc:
            raise RuntimeError(f"{selector} did not appear within {SAMPLE_TIMEOUT_MS} ms") from exc
        return seen - self.offset_ms - start


def _check(ok: bool, task_id: str) -> None:
    if not ok:
        raise RuntimeError(f"the bench team's task {task_id} is not where the bench left it: "
                           "did something flush or change this Redis meanwhile?")


def run_live_bench(redis_url: str, samples: int = 200, sockets: int = 100, *, server: str = servers.DEFAULT_SERVER,
                   browser=None, warmup: int | None = None, log=print) -> dict:
    """Time library change -> dashboard DOM with ``sockets`` dashboard WebSockets open, the site served
    by ``server`` (daphne or uvicorn) on the production path (DEBUG off, collected static files).

    ``samples`` changes are measured (task added, claimed, completed in turn). Pass ``browser`` (a
    Playwright Browser) to reuse one; otherwise Chromium is started and stopped here.
    Returns {"mode", "server", "samples", "sockets", "clock", "ops", "all", "target"}.
    """
    if samples < 1 or sockets < 1:
        raise ValueError("samples and sockets must be at least 1")
    servers.check(server)
    memory = RedisShortTermMemory(redis_url)
    if memory.mode != "redis":
        raise RuntimeError("bench --live needs a plain Redis (the server runs in another process)")
    team = f"bench-live-{uuid.uuid4().hex[:10]}"
    agent = "bench-agent"
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent(agent, ["bench"])  # the team exists before any page connects
    user, password = f"bench-live-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    warmup = max(5, min(30, samples // 10)) if warmup is None else warmup
    site = None
    playwright = None
    try:
        log(f"starting the site ({server}) and a throwaway observer ...")
        site = SiteServer(redis_url, {user: "observer"}, password, server=server)
        if browser is None:
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
            browser = launch_chromium(playwright)
        context = browser.new_context(base_url=site.url)
        try:
            context.add_init_script(WS_PROBE_JS)
            page = context.new_page()
            log_in(page, user, password)
            extra = sockets - 1
            if extra:
                # Opened first: the server writes each update to its pages in the order they came,
                # so the measured page, opened last, is the last to be written to.
                log(f"opening {extra} more dashboard WebSockets ...")
                holder = context.new_page()
                holder.goto("/api/v1/health")
                ws_url = site.url.replace("http://", "ws://") + f"/ws/teams/{team}/"
                holder.evaluate(OPEN_SOCKETS_JS, [ws_url, extra])
                holder.wait_for_function("() => window.__benchSockets.every(ws => ws.messages > 0)",
                                         timeout=SAMPLE_TIMEOUT_MS * 3)
            page.bring_to_front()  # a background tab's timers (htmx's swaps) would be throttled
            page.goto(f"/teams/{team}/")
            wait_live(page)
            page.evaluate(OBSERVER_JS)
            offset, uncertainty = _clock_offset_ms(page)
            sampler = _Sampler(page, offset)
            times: dict[str, list[float]] = {"task.added": [], "task.claimed": [], "task.completed": []}
            log(f"measuring {warmup} warm-up and {samples} changes ...")
            done, i = 0, 0
            while done < samples + warmup:
                task_id = f"b{i}"
                steps = [
                    ("task.added", f"#tasks-pending #task-{task_id}",
                     lambda: _check(coordinator.add_task(AgentTask(task_id, "bench", priority=5)), task_id)),
                    ("task.claimed", f"#tasks-in_progress #task-{task_id}",
                     lambda: _check(getattr(coordinator.claim_task(agent, "bench"), "task_id", None) == task_id,
                                    task_id)),
                    ("task.completed", f"#tasks-completed #task-{task_id}",
                     lambda: coordinator.complete_task(task_id, {"i": i}, agent_id=agent)),
                ]
                for kind, selector, change in steps:
                    elapsed = sampler.measure(f"{kind}:{task_id}", selector, change)
                    if done >= warmup and done < samples + warmup:
                        times[kind].append(elapsed)
                    done += 1
                i += 1
            if extra:
                closed = holder.evaluate("window.__benchClosed || 0")
                if closed:
                    raise RuntimeError(f"{closed} of the extra WebSockets closed during the bench")
        finally:
            context.close()
    finally:
        if playwright is not None:
            browser.close()
            playwright.stop()
        if site is not None:
            site.stop()
        cleanup(memory, team)
        memory.client.close()
    everything = [t for values in times.values() for t in values]
    overall = _percentiles_ms(everything)
    return {
        "mode": memory.mode, "server": server, "samples": len(everything), "sockets": sockets,
        "clock": {"browser_minus_python_ms": offset, "uncertainty_ms": uncertainty},
        "ops": {kind: _percentiles_ms(values) for kind, values in times.items() if values},
        "all": overall,
        "target": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS,
                   "met": overall["p50_ms"] < TARGET_P50_MS and overall["p99_ms"] < TARGET_P99_MS},
    }


def format_live_table(report: dict) -> str:
    lines = [f"Event to browser DOM ({report['mode']}, {report.get('server', servers.DEFAULT_SERVER)}, {report['samples']} changes, "
             f"{report['sockets']} dashboard WebSockets open)",
             f"{'change':<18}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for name, figures in [*report["ops"].items(), ("all", report["all"])]:
        lines.append(f"{name:<18}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}{figures['max_ms']:>10.2f}")
    clock = report["clock"]
    lines.append(f"clock offset browser - python: {clock['browser_minus_python_ms']:+.2f} ms "
                 f"(± {clock['uncertainty_ms']:.2f} ms), taken out")
    target = report["target"]
    lines.append(f"target: p50 under {target['p50_ms']:.0f} ms and p99 under {target['p99_ms']:.0f} ms: "
                 f"{'met' if target['met'] else 'MISSED'}")
    return "\n".join(lines)

"""The demo agents (coordination.demo) on both backends, and ``manage.py serve`` as a real process."""

from __future__ import annotations

import functools
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from coordination import demo, demo_work
from coordination.management.commands.serve import demo_enabled, ensure_demo_users
from coordination.servers import DEFAULT_SERVER, SERVERS
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, get_session_info, list_sessions
from patterns import library
from patterns.models import LibraryLookup, LibraryPattern
from tests import support
from tests.support import free_port

REVIEW = "review_team"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


#: The demo works at a human pace: give it time.
wait_until = functools.partial(support.wait_until, timeout=30.0, interval=0.05)


@pytest.fixture
def review(memory):
    """The review team's demo: its lead and workers by agent id, the library seeded."""
    d = demo.Demo(memory, seed=7, teams=demo.TEAMS[:1])
    d.seed_library()
    return d, {actor.agent_id: actor for actor in d.actors}


def events(memory, team, kind):
    return [e for e in memory.read_events(team, count=10_000) if e["kind"] == kind]


def test_it_registers_agents_and_moves_tasks_through_the_board(memory):
    d = demo.Demo(memory, seed=1)
    d.seed_library()
    for _ in range(30):
        d.process_one()
    review = AgentCoordinator(memory, REVIEW)
    assert {a["agent_id"] for a in review.get_agents()} == {
        "lead_reviewer", "security_agent", "performance_agent", "style_agent"}
    assert set(review.get_active_agents()) == {a["agent_id"] for a in review.get_agents()}
    results = review.aggregate_results()
    assert results["total_completed"] >= 5
    assert set(results["by_agent"]) <= {"security_agent", "performance_agent", "style_agent"}
    done = review.list_tasks("completed")[0]
    assert [e["event"] for e in review.get_task_history(done.task_id)][-2:] == ["claimed", "completed"]
    assert done.result["summary"] and "time_taken_ms" in done.result
    platform = AgentCoordinator(memory, "platform_team")
    assert platform.aggregate_results()["total_completed"] >= 3
    assert set(memory.list_teams()) == {"review_team", "platform_team"}


def test_it_signals_the_lead_and_broadcasts(memory, review):
    d, actors = review
    for _ in range(12):
        d.process_one()
    sent = events(memory, REVIEW, "signal.sent")
    targeted = [e for e in sent if e["target"] == "lead_reviewer"]
    broadcasts = [e for e in sent if not e["target"]]
    assert {e["signal_type"] for e in targeted} >= {"analysis_complete"}
    assert {e["signal_type"] for e in broadcasts} >= {demo.WORK_SIGNAL}
    assert {e["agent"] for e in targeted} <= {"security_agent", "performance_agent", "style_agent"}


def test_it_shares_context_in_review_sessions(memory, review, monkeypatch):
    monkeypatch.setattr(demo, "CRASH_CHANCE", 0.0)  # a crash would hold the review for a whole lease
    d, actors = review
    lead = actors["lead_reviewer"]
    session_id = lead.open_review()
    for _ in range(40):
        d.process_one()
        if session_id not in lead.open:
            break
    info = get_session_info(memory, REVIEW, session_id)
    assert info["purpose"].startswith("Review PR #")
    assert "lead_reviewer" in info["participants"] and len(info["participants"]) >= 2
    assert "pr_context" in info["context_keys"] and "summary" in info["context_keys"]
    assert any(key.startswith(("security_review.", "performance_review.", "style_review."))
               for key in info["context_keys"])
    assert list_sessions(memory, REVIEW)


def test_it_keeps_the_board_moving(memory, review, monkeypatch):
    monkeypatch.setattr(demo, "CRASH_CHANCE", 0.0)
    d, actors = review
    lead = actors["lead_reviewer"]
    lead.step()
    coordinator = AgentCoordinator(memory, REVIEW)
    assert coordinator.count_tasks()["pending"] > 0
    assert len(lead.open) == 1
    first = next(iter(lead.open))
    for _ in range(60):
        d.process_one()
        if first not in lead.open:
            break
    assert first not in lead.open  # reviewed and summed up
    assert "summary" in get_session_info(memory, REVIEW, first)["context_keys"]
    assert len(list_sessions(memory, REVIEW)) >= 2  # and the lead opened more work
    assert "review_finished" in {e["signal_type"] for e in events(memory, REVIEW, "signal.sent")}


def test_it_fails_tasks_with_a_reason_and_tells_the_lead(memory, review):
    d, actors = review
    lead, worker = actors["lead_reviewer"], actors["security_agent"]
    lead.open_review()
    worker.step()  # registers and claims
    task_id = worker.task.task_id
    worker.finish("fail")
    task = AgentCoordinator(memory, REVIEW).get_task(task_id)
    assert task.status in ("failed", "pending")  # pending: it asked for a retry
    history = AgentCoordinator(memory, REVIEW).get_task_history(task_id)
    assert any(e.get("reason") in demo_work.FAILURE_REASONS for e in history)
    received = lead.coordinator.receive_signals("task_failed")
    assert [s["data"]["task_id"] for s in received] == [task_id]


def test_it_returns_a_crashed_agents_task_when_the_lease_lapses(memory, review, monkeypatch):
    monkeypatch.setattr(demo, "MIN_LEASE_SECONDS", 0.2)
    monkeypatch.setattr(demo, "LEASE_SECONDS", 0.2)
    d, actors = review
    lead, worker = actors["lead_reviewer"], actors["style_agent"]
    lead.open_review()
    worker.step()
    task = worker.task
    assert worker.finish("crash") > 0 and worker.crashed
    coordinator = AgentCoordinator(memory, REVIEW)
    assert coordinator.get_task(task.task_id).status == "in_progress"  # nobody completes it
    wait_until(lambda: lead.coordinator.reap_expired_leases() or
               coordinator.get_task(task.task_id).status == "pending")
    assert coordinator.get_task(task.task_id).status == "pending"
    assert "requeued" in [e["event"] for e in coordinator.get_task_history(task.task_id)]
    worker.step()  # restarts: registers again, claims
    assert not worker.crashed and worker.task is not None


def test_it_consults_the_library_before_staging(memory, review):
    d, actors = review
    worker = actors["performance_agent"]
    lead = actors["lead_reviewer"]
    lead.open_review()
    worker.step()
    task = worker.task
    classic, other = demo_work.PATTERNS["performance_review"][0], demo_work.PATTERNS["performance_review"][1]
    assert worker.discover_pattern(task, spec=classic) == "reused"  # the seeded library has it
    assert worker.discover_pattern(task, spec=other) == "staged"
    lookups = LibraryLookup.objects.get(team_id=REVIEW)
    assert (lookups.lookups, lookups.hits) == (2, 1)
    assert library.reuse_rate(REVIEW) == 0.5
    staged = memory.get_staged_patterns(AgentCredentials("v", AccessTier.VALIDATOR, REVIEW))
    assert [p.name for p in staged] == [other["name"]]
    assert staged[0].context["task_id"] == task.task_id


def test_it_sometimes_stages_a_rediscovery(memory, review, monkeypatch):
    monkeypatch.setattr(demo, "REDISCOVERY_CHANCE", 1.0)
    d, actors = review
    actors["lead_reviewer"].open_review()
    worker = actors["security_agent"]
    worker.step()
    assert worker.discover_pattern(worker.task) == "staged"
    staged = memory.get_staged_patterns(AgentCredentials("v", AccessTier.VALIDATOR, REVIEW))
    assert list(library.rediscoveries(REVIEW, staged).values()) == [
        LibraryPattern.objects.get(team_id=REVIEW, discovered_by="security_agent").pattern_id]


def test_it_stages_a_pattern_with_a_script_tag_in_its_code(memory, review):
    d, actors = review
    actors["lead_reviewer"].open_review()
    worker = actors["security_agent"]
    worker.step()
    spec = next(p for p in demo_work.PATTERNS["security_review"] if "<script>" in (p["code"] or ""))
    assert worker.discover_pattern(worker.task, spec=spec) == "staged"
    staged = memory.get_staged_patterns(AgentCredentials("v", AccessTier.VALIDATOR, REVIEW))
    assert "<script>" in staged[0].code


def test_it_stops_staging_when_the_review_queue_is_full(memory, db):
    d = demo.Demo(memory, seed=7, teams=demo.TEAMS[:1], max_staged=1)
    actors = {actor.agent_id: actor for actor in d.actors}
    actors["lead_reviewer"].open_review()
    worker = actors["style_agent"]
    worker.step()
    first, second = demo_work.PATTERNS["style_review"][1], demo_work.PATTERNS["style_review"][2]
    assert worker.discover_pattern(worker.task, spec=first) == "staged"
    assert worker.discover_pattern(worker.task, spec=second) == "queue full"
    assert len(memory.get_staged_patterns(AgentCredentials("v", AccessTier.VALIDATOR, REVIEW))) == 1
    assert memory.config.staged_pattern_limit > 1  # the site's own agents keep the site's limit


def test_it_seeds_each_library_once(memory):
    d = demo.Demo(memory, seed=3)
    assert d.seed_library() == 5  # one classic pattern per agent of both teams
    assert demo.Demo(memory, seed=4).seed_library() == 0
    assert LibraryPattern.objects.filter(team_id=REVIEW, promoted_by=demo.SEED_VALIDATOR).count() == 3


def test_it_refuses_a_speed_that_is_not_positive(memory):
    with pytest.raises(ValueError):
        demo.Demo(memory, speed=0)


@pytest.mark.django_db(transaction=True)
def test_it_runs_in_threads_until_the_stop_event(memory):
    stop = threading.Event()
    threads = demo.run_demo(memory, stop, speed=20, seed=5)
    try:
        assert len(threads) == 7 and all(t.daemon for t in threads)
        review = AgentCoordinator(memory, REVIEW)
        wait_until(lambda: review.aggregate_results()["total_completed"] >= 3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not any(t.is_alive() for t in threads)


# -- manage.py serve ------------------------------------------------------------------------------------------


def test_it_creates_the_demo_logins_once_and_leaves_changed_passwords_alone():
    logins = ensure_demo_users()
    assert logins == [("lead", "lead-demo-pass", "Steward"), ("validator", "validator-demo-pass", "Validator"),
                      ("observer", "observer-demo-pass", "Observer")]
    user = get_user_model().objects.get(username="validator")
    assert list(user.groups.values_list("name", flat=True)) == ["Validator"]
    user.set_password("mine-now")
    user.save()
    again = ensure_demo_users()
    assert again[1] == ("validator", None, "Validator")
    assert get_user_model().objects.get(username="validator").check_password("mine-now")


def test_it_turns_the_demo_off_by_flag_or_environment(monkeypatch):
    monkeypatch.delenv("EMPATHY_DEMO", raising=False)
    assert demo_enabled(no_demo=False) and not demo_enabled(no_demo=True)
    monkeypatch.setenv("EMPATHY_DEMO", "0")
    assert not demo_enabled(no_demo=False)


class Server:
    """``manage.py serve`` in a subprocess, its output read line by line in a thread."""

    def __init__(self, tmp_path, *args):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EMPATHY_METRICS_TOKEN", "EMPATHY_DEMO")}
        env.update(EMPATHY_REDIS_MOCK="1", EMPATHY_DB_PATH=str(tmp_path / "db.sqlite3"), DJANGO_DEBUG="1",
                   PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got {self.output}") from None
            self.output.append(line)
            if re.search(pattern, line):
                return line

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            return 0, ""

    def stop_when_done(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the process to end by itself; returns its exit code and stderr."""
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code, self.process.stderr.read()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self.reader.join(5)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code, self.process.stderr.read()


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(*args):
        servers.append(Server(tmp_path, *args))
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        server.process.stdout.close()
        server.process.stderr.close()


def completed_in(metrics_text: str, team: str) -> float:
    match = re.search(rf'^empathy_tasks_completed_total\{{team="{team}"\}} (\S+)$', metrics_text, re.M)
    return float(match[1]) if match else 0.0


@pytest.mark.parametrize("name", SERVERS)
def test_it_serves_the_site_with_the_demo_and_stops_cleanly_on_ctrl_c(served, name):
    server = served("--speed", "5", "--server", name)
    line = server.wait_for_line(r"^Empathy coordination at ")
    assert line == f"Empathy coordination at http://127.0.0.1:{server.port}/"
    assert server.wait_for_line(r"^server: ") == f"server: {name}"
    status, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(server.get("/api/v1/health")))
    assert '"memory_mode": "mock"' in body
    server.wait_for_line(r"^Ctrl-C stops the server\.$")
    text = "\n".join(server.output)
    assert "memory mode: mock" in text
    for login in ("lead / lead-demo-pass", "validator / validator-demo-pass", "observer / observer-demo-pass"):
        assert login in text
    wait_until(lambda: completed_in(server.get("/metrics")[1], REVIEW) >= 1)
    assert server.get("/static/js/charts.js")[0] == 200
    code, stderr = server.stop()
    assert code == 0
    assert server.output[-1] == "stopped"
    assert "Traceback" not in stderr


def test_its_default_server_is_the_measured_one(served):
    server = served("--no-demo")
    assert server.wait_for_line(r"^server: ") == f"server: {DEFAULT_SERVER}"
    assert server.stop()[0] == 0


@pytest.mark.parametrize("name", SERVERS)
def test_a_port_in_use_is_a_clear_error(served, name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = served("--no-demo", "--server", name, "--port", str(taken.getsockname()[1]))
        code, stderr = server.stop_when_done()
    assert code != 0 and "could not listen on 127.0.0.1" in stderr and "Traceback" not in stderr


def test_it_serves_without_the_demo(served):
    server = served("--no-demo")
    server.wait_for_line(r"^demo agents: off$")
    status, text = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(server.get("/metrics")))
    assert "empathy_up 1.0" in text.splitlines()
    assert "empathy_tasks{" not in text  # no team has done anything
    code, stderr = server.stop()
    assert code == 0 and "Traceback" not in stderr

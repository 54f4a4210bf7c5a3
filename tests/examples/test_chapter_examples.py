"""The chapter's code blocks, run unchanged as the scripts in ``examples/``, print what the chapter says.

Every script runs in its own process, as a reader would run it: in mock mode (``EMPATHY_REDIS_MOCK=1``,
no ``REDIS_URL``) and on the test session's private redis-server (``REDIS_URL``), flushed before each
test. Each expected transcript is the whole of the script's output, the earlier steps it continues
included, so a step that prints nothing, too much or the wrong value fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from empathy_os import AgentCoordinator, RedisShortTermMemory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Line:
    """An expected output line whose varying part is a regular expression (ids, timings, key counts)."""

    def __init__(self, pattern: str):
        self.pattern = re.compile(pattern)

    def __repr__(self):
        return f"Line({self.pattern.pattern!r})"


SESSION_ID = r"[0-9a-f]{12}"


def step01(backend):
    if backend == "mock":
        return ["Using mock mode (no Redis)"]
    return ["Connected to Redis", Line(r"Mode: redis, Keys: \d+")]


def step02(backend):
    return step01(backend) + ["Has memory: True", Line(rf"Session ID: code_reviewer-{SESSION_ID}")]


def step04(backend):
    return step01(backend) + ["Active agents: ['performance_agent', 'security_agent', 'style_agent']"]


def step05(backend):
    return step04(backend) + [
        "Added task: sec_001 (priority 9)",
        "Added task: perf_001 (priority 7)",
        "Added task: style_001 (priority 5)",
    ]


def step06(backend):
    return step05(backend) + ["Security agent claimed: sec_001", "Task completed with 2 warnings"]


def step10(backend):
    return step02(backend) + ["Pattern staged: Eager Loading for N+1 Queries"]


PATTERN_CODE = """
# Before (N+1 problem):
for user in users:
    print(user.profile.name)  # Queries DB for each user

# After (eager loading):
users = User.objects.select_related('profile').all()
for user in users:
    print(user.profile.name)  # No additional queries
"""


def step12(backend):
    return step02(backend) + [
        Line(rf"State persisted for session: long_running_agent-{SESSION_ID}"),
        "Trust level restored: 0.85",
        "Empathy level: 4",
    ]


EXPECTED = {
    "step01_get_memory": step01,
    "step02_create_agent": step02,
    "step03_basic_operations": lambda b: step02(b) + ["Working on: code_review for 2 files"],
    "step04_set_up_team": step04,
    "step05_distribute_tasks": step05,
    "step06_claim_and_complete": step06,
    "step07_aggregate_results": lambda b: step06(b) + [
        "Total completed: 1",
        "By agent: {'security_agent': 1}",
        "By type: {'security_review': 1}",
    ],
    "step08_signals": lambda b: step02(b) + [
        "From code_reviewer: {'agent': 'security_agent', 'findings': {'critical': 0, 'warnings': 2}, "
        "'confidence': 0.92}",
    ],
    "step09_team_session": lambda b: step01(b) + [
        "Reviewing PR #42 by developer_123",
        "Participants: ['lead_reviewer', 'performance_agent', 'security_agent']",
    ],
    "step10_stage_pattern": step10,
    "step11_validate_patterns": lambda b: step10(b) + [
        "Patterns awaiting validation: 1",
        "",
        "--- Eager Loading for N+1 Queries ---",
        "Type: optimization",
        "Confidence: 88%",
        "Discovered by: performance_agent",
        "Code example:",
        *PATTERN_CODE.split("\n"),  # the code, exactly as staged, then print's own newline
        "APPROVED: Promoting to pattern library",
    ],
    "step12_persist_state": step12,
    "part6_measure": lambda b: step04(b) + [
        Line(r"Task distribution: \d+\.\dms per task"),
        Line(r"Signal round-trip: \d+\.\dms"),
        Line(rf"Mode: {b}, Keys: [1-9]\d*"),
    ],
    "complete_example": lambda b: [
        f"Memory mode: {b}",
        "",
        "Review Complete!",
        "Signals received: 1",
        "Patterns staged: 1",
        Line(r"Final keys in Redis: [1-9]\d*"),
        "State persisted",
    ],
    # The chapter's block prints nothing; the script adds one line after it. Mock even with REDIS_URL set.
    "troubleshoot_mock": lambda b: ["Mode: mock, answers: True"],
    "troubleshoot_permissions": lambda b: step02(b) + [
        "Tier: contributor",
        "Can write: True",
        "Can validate: False",
    ],
    "troubleshoot_state": lambda b: step12(b) + [Line(rf"Original session: long_running_agent-{SESSION_ID}")],
}


def run_example(script: str, backend: str, request, *, cwd: Path = EXAMPLES,
                path: str | None = None, site: dict | None = None, args=()) -> subprocess.CompletedProcess:
    """Run one example in a fresh interpreter, with nothing of this process's Redis settings: in mock
    mode, on the private redis-server, or (``site``: extra environment) as a client of a site."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("EMPATHY_") and name not in ("REDIS_URL", "REDIS_CLUSTER", "PYTHONPATH")}
    if site is not None:
        env.update(site)
    elif backend == "mock":
        env["EMPATHY_REDIS_MOCK"] = "1"
    else:
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return subprocess.run([sys.executable, path or f"{script}.py", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def assert_prints(proc: subprocess.CompletedProcess, expected: list) -> None:
    """The run succeeded, wrote nothing to stderr, and its stdout is exactly the expected lines."""
    assert proc.stderr == ""
    assert proc.returncode == 0
    lines = proc.stdout.split("\n")
    assert lines[-1] == ""  # the output ends with a newline
    lines = lines[:-1]
    # Replace each pattern by the actual line it matches, so a mismatch shows as a plain diff.
    wanted = []
    for i, want in enumerate(expected):
        if isinstance(want, Line):
            got = lines[i] if i < len(lines) else None
            wanted.append(got if got is not None and want.pattern.fullmatch(got) else want)
        else:
            wanted.append(want)
    assert lines == wanted


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_it_prints_what_the_chapter_says(script, backend, request):
    proc = run_example(script, backend, request)
    assert_prints(proc, EXPECTED[script](backend))


def test_it_has_a_script_for_every_chapter_block():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"http_agent"}
    assert scripts == set(EXPECTED)
    assert len(scripts) == 17  # the chapter's python code blocks
    for script in scripts:
        text = (EXAMPLES / f"{script}.py").read_text(encoding="utf-8")
        assert text.count("# --- chapter block begins ---\n") == 1
        assert text.count("# --- chapter block ends ---\n") == 1
        assert text.index("# --- chapter block begins ---") < text.index("# --- chapter block ends ---")


@pytest.mark.parametrize("where", ["repo_root", "elsewhere"])
@pytest.mark.parametrize("script", ["step07_aggregate_results", "troubleshoot_state", "complete_example"])
def test_it_runs_from_any_directory(script, where, backend, request, tmp_path):
    cwd = ROOT if where == "repo_root" else tmp_path
    path = f"examples/{script}.py" if where == "repo_root" else str(EXAMPLES / f"{script}.py")
    proc = run_example(script, backend, request, cwd=cwd, path=path)
    assert_prints(proc, EXPECTED[script](backend))


def test_it_restores_state_under_the_session_it_persisted(backend, request):
    proc = run_example("troubleshoot_state", backend, request)
    assert proc.returncode == 0
    persisted = re.search(r"^State persisted for session: (\S+)$", proc.stdout, re.M).group(1)
    original = re.search(r"^Original session: (\S+)$", proc.stdout, re.M).group(1)
    assert original == persisted


def test_it_leaves_its_work_in_the_redis_named_by_redis_url(redis_url, request):
    proc = run_example("step07_aggregate_results", "redis", request)
    assert proc.returncode == 0
    memory = RedisShortTermMemory(redis_url)
    request.addfinalizer(memory.client.close)
    results = AgentCoordinator(memory, team_id="review_team").aggregate_results()
    assert results["total_completed"] == 1
    assert results["by_agent"] == {"security_agent": 1}
    assert memory.get_stats()["tasks_pending"] == 2

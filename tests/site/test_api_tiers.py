"""Every endpoint of /api/v1 x every caller (anonymous and each tier), on both backends.

One table row per endpoint: method, path, body, the lowest tier allowed (None: no token needed) and
the status a caller at or above that tier gets. Anonymous callers get 401, callers below the
minimum 403, everyone else the success status. Each row has a ``setup`` that prepares, for the
calling agent, what a successful call needs (a staged pattern to promote, a task it holds, ...),
through the library, so a 403 is a refusal of the tier and not of missing state.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest

from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, StagedPattern, TeamSession
from tests.support import assert_error

from .conftest import TEAM, TIERS

pytestmark = pytest.mark.django_db(transaction=True)

_ids = itertools.count(1)


def as_contributor(agent_id: str) -> AgentCredentials:
    """Library credentials of the caller's id at contributor tier: to prepare state an observer owns."""
    return AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, TEAM)


STEWARD = AgentCredentials("setup-steward", AccessTier.STEWARD, TEAM)


# -- setups: (memory, caller agent id) -> substitutions for the path -------------------------------


def nothing(memory, agent_id):
    return {}


def unique(memory, agent_id):
    return {"n": next(_ids)}


def stashed_by_other(memory, agent_id):
    memory.stash(as_contributor("writer"), "shared-note", {"v": 1})
    return {}


def stashed_by_caller(memory, agent_id):
    memory.stash(as_contributor(agent_id), "mine", {"v": 1})
    return {}


def task_held_by_caller(memory, agent_id):
    n = next(_ids)
    coordinator = AgentCoordinator(memory, TEAM)
    coordinator.add_task(AgentTask(f"held-{n}", f"held-type-{n}"))
    AgentCoordinator(memory, TEAM, as_contributor(agent_id)).claim_task(agent_id, f"held-type-{n}")
    return {"task": f"held-{n}"}


def pending_task(memory, agent_id):
    n = next(_ids)
    AgentCoordinator(memory, TEAM).add_task(AgentTask(f"claimable-{n}", f"claim-type-{n}"))
    return {"type": f"claim-type-{n}", "task": f"claimable-{n}"}


def session(memory, agent_id):
    n = next(_ids)
    s = TeamSession(memory, f"session-{n}", "tiers", team_id=TEAM, credentials=STEWARD)
    s.share("shared", {"v": 1})
    return {"session": f"session-{n}"}


def staged_pattern(memory, agent_id):
    n = next(_ids)
    author = as_contributor("author")
    memory.stage_pattern(author, StagedPattern(f"pattern-{n}", "author", "security", f"Pattern {n}",
                                               description=f"description {n}"))
    return {"pattern": f"pattern-{n}"}


def state_of_caller(memory, agent_id):
    memory.persist_state(as_contributor(agent_id), "state-session", {"step": 1})
    return {}


def registered_signal(memory, agent_id):
    memory.send_signal(as_contributor("sender"), "ping", {"v": 1})
    return {}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    min_tier: Optional[str]  # None: no token needed
    status: int
    body: object = None
    setup: Callable = nothing
    fmt: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


ROWS = [
    Row("GET", "/health", None, 200),
    Row("GET", "/openapi.json", None, 200),
    Row("GET", "/docs", None, 200),
    Row("GET", "/stats", "observer", 200),
    # working memory
    Row("PUT", "/memory/note-{n}", "contributor", 200, {"value": {"a": 1}, "ttl": 60}, unique),
    Row("GET", "/memory/shared-note?agent_id=writer", "observer", 200, None, stashed_by_other),
    Row("DELETE", "/memory/mine", "contributor", 204, None, stashed_by_caller),
    # agents
    Row("POST", "/agents/register", "contributor", 200, {"capabilities": ["review"]}),
    Row("POST", "/agents/heartbeat", "contributor", 200, {"lease_seconds": 30}),
    Row("GET", "/agents", "observer", 200),
    # tasks
    Row("POST", "/tasks", "contributor", 201, {"task_id": "new-{n}", "task_type": "review"}, unique),
    Row("POST", "/tasks", "contributor", 201,
        [{"task_id": "batch-a-{n}", "task_type": "review"}, {"task_id": "batch-b-{n}", "task_type": "review"}],
        unique),
    Row("POST", "/tasks/claim", "contributor", 200, {"task_type": "{type}"}, pending_task),
    Row("POST", "/tasks/{task}/complete", "contributor", 200, {"result": {"ok": True}}, task_held_by_caller),
    Row("POST", "/tasks/claim-batch", "contributor", 200, {"task_type": "{type}", "n": 5}, pending_task),
    Row("POST", "/tasks/complete-batch", "contributor", 200, {"completions": [{"task_id": "{task}"}]},
        task_held_by_caller),
    Row("POST", "/tasks/{task}/fail", "contributor", 200, {"reason": "cannot"}, task_held_by_caller),
    Row("POST", "/tasks/{task}/heartbeat", "contributor", 200, {"lease_seconds": 30}, task_held_by_caller),
    Row("GET", "/tasks?status=pending", "observer", 200),
    Row("GET", "/tasks/{task}", "observer", 200, None, pending_task),
    Row("GET", "/results", "observer", 200),
    # signals
    Row("POST", "/signals", "contributor", 201, {"signal_type": "ping", "data": {"x": 1}}),
    Row("GET", "/signals?type=ping", "observer", 200, None, registered_signal),
    # sessions
    Row("POST", "/sessions", "contributor", 201, {"session_id": "opened-{n}", "purpose": "p"}, unique),
    Row("POST", "/sessions/{session}/join", "contributor", 200, None, session),
    Row("PUT", "/sessions/{session}/context/finding", "contributor", 200, {"value": [1, 2]}, session),
    Row("GET", "/sessions/{session}/context/shared", "observer", 200, None, session),
    Row("GET", "/sessions/{session}", "observer", 200, None, session),
    # patterns
    Row("POST", "/patterns/staged", "contributor", 201,
        {"pattern_id": "staged-{n}", "pattern_type": "security", "name": "A pattern", "confidence": 0.8}, unique),
    Row("GET", "/patterns/staged", "observer", 200),
    Row("POST", "/patterns/staged/{pattern}/promote", "validator", 200, {"note": "good"}, staged_pattern),
    Row("POST", "/patterns/staged/{pattern}/reject", "validator", 200, {"reason": "duplicate"}, staged_pattern),
    Row("GET", "/patterns/library?q=x&type=security", "observer", 200),
    # collaboration state
    Row("PUT", "/state/state-{n}", "contributor", 200, {"state": {"step": 2}}, unique),
    Row("GET", "/state/state-session", "observer", 200, None, state_of_caller),
]

CALLERS = ("anonymous", *TIERS)


def fill(value, subs: dict):
    """Substitute ``{name}`` in every string of ``value`` (a path or a JSON body)."""
    if isinstance(value, str):
        return value.format(**subs) if subs else value
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, subs) for k, v in value.items()}
    return value


def expected(row: Row, caller: str) -> int:
    if row.min_tier is None:
        return row.status
    if caller == "anonymous":
        return 401
    if AccessTier.parse(caller) < AccessTier.parse(row.min_tier):
        return 403
    return row.status


def test_the_table_covers_every_operation_of_the_schema(api):
    """A new endpoint without a row here fails this test."""
    schema = api.get("/openapi.json").json()
    operations = {(method.upper(), path.removeprefix("/api/v1"))
                  for path, item in schema["paths"].items() for method in item}

    def matches(method, template, row):
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        return row.method == method and re.fullmatch(pattern, row.path.split("?")[0]) is not None

    missing = sorted((m, p) for m, p in operations if not any(matches(m, p, row) for row in ROWS))
    assert not missing, f"endpoints without a tier row: {missing}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_every_endpoint_for_every_tier(row, caller, site_memory, make_token, api):
    agent = None if caller == "anonymous" else make_token(caller)
    subs = row.setup(site_memory, agent.agent_id if agent else "nobody")
    path, body = fill(row.path, subs), fill(row.body, subs)
    response = api.request(row.method, path, body, token=agent)
    want = expected(row, caller)
    assert response.status_code == want, (caller, response.status_code, response.content[:300])
    if want == 401:
        assert_error(response, 401, "unauthorized")
        assert response["WWW-Authenticate"] == "Bearer"
    elif want == 403:
        assert_error(response, 403, "forbidden")
    elif want == 204:
        assert response.content == b""
    elif row.path != "/docs":
        assert response["Content-Type"].startswith("application/json")
        response.json()

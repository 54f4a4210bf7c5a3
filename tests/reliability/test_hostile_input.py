"""Hostile input: ids with ``:``, ``*``, ``{``, ``}``, spaces, unicode, empty or very long; deeply nested
and oversize values; non-JSON values. The library refuses each with its own ``ValueError`` subclass
saying what is wrong, and stores nothing (the number of keys is the same before and after); the API
answers each with a 4xx JSON error, never a 500 or a RecursionError.

Hypothesis generates the ids and payloads (on fakeredis, and fewer on the real redis-server);
the number of examples run is printed at the end of the module (``pytest -s``).
"""

from __future__ import annotations

from collections import Counter

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.memory import memory_in_use
from coordination.tokens import issue_token
from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    Config,
    InvalidInputError,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
    ValueTooLargeError,
)
from empathy_os.keys import ID_PATTERN
from tests.support import Api, assert_error

TEAM = "hostile"
LIMIT = 64 * 1024  # a small max_value_bytes keeps oversize examples cheap
EXAMPLES = Counter()

#: Characters that mean something to Redis key names, globs, hash tags or URLs, plus unicode look-alikes.
NASTY = ":*{}[]?\\ /\t\n\r\x00%#&=+,;'\"<>|`~$^()!@é中\u200b\u202eａ"

hostile_ids = st.one_of(
    st.text(alphabet=st.sampled_from(NASTY + "abc019_.-"), min_size=0, max_size=40),
    st.text(min_size=0, max_size=20),
    st.builds(lambda c, n: "a" * n + c, st.sampled_from(NASTY), st.integers(0, 200)),
    st.integers(129, 2000).map(lambda n: "a" * n),
    st.sampled_from(["", " ", "-lead", ".", "_x", "a b", "a:b", "a*", "{team:x}", "x}", "é", "a\n"]),
).filter(lambda s: not ID_PATTERN.fullmatch(s))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

not_json = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), b"bytes", {1, 2}, object(),
                     {("tuple",): 1}, complex(1, 2)]),
    st.lists(st.just(float("nan")), min_size=1, max_size=3),
)


def nested(depth: int, kind: str = "list"):
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def mock_memory() -> RedisShortTermMemory:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    return RedisShortTermMemory(client=client, config=Config(max_value_bytes=LIMIT))


@pytest.fixture(scope="module", autouse=True)
def report_examples():
    """Print how many generated examples ran (for docs/reliability.md)."""
    yield
    if EXAMPLES:  # (pytest-django runs the database tests apart: this module may be set up twice)
        print(f"\nhostile input: hypothesis examples run: {dict(EXAMPLES)}, total {sum(EXAMPLES.values())}")


@pytest.fixture(params=["mock", "redis"])
def world(request):
    """A team with a registered agent, a session and a staged pattern; plus the counts of examples to run."""
    if request.param == "mock":
        memory, examples = mock_memory(), 300
    else:
        memory, examples = RedisShortTermMemory(request.getfixturevalue("redis_url"), config=Config(max_value_bytes=LIMIT)), 60
        request.addfinalizer(memory.client.close)
    lead = AgentCoordinator(memory, TEAM)
    lead.register_agent("alpha", ["review"])
    worker = AgentCredentials("alpha", AccessTier.CONTRIBUTOR, TEAM)
    TeamSession(memory, "triage", "p", team_id=TEAM, credentials=worker)
    return memory, lead, worker, examples


def key_count(memory) -> int:
    return memory.client.dbsize()


#: Library calls with an id argument, each given the hostile id.
ID_OPERATIONS = {
    "stash key": lambda m, lead, w, bad: m.stash(w, bad, {"v": 1}),
    "retrieve key": lambda m, lead, w, bad: m.retrieve(w, bad),
    "retrieve agent": lambda m, lead, w, bad: m.retrieve(w, "k", bad),
    "forget key": lambda m, lead, w, bad: m.forget(w, bad),
    "team id": lambda m, lead, w, bad: AgentCoordinator(m, bad),
    "credentials": lambda m, lead, w, bad: AgentCredentials(bad, AccessTier.CONTRIBUTOR, TEAM),
    "credentials team": lambda m, lead, w, bad: AgentCredentials("alpha", AccessTier.CONTRIBUTOR, bad),
    "register agent": lambda m, lead, w, bad: lead.register_agent(bad, ["review"]),
    "capability": lambda m, lead, w, bad: lead.register_agent("beta", ["review", bad]),
    "task id": lambda m, lead, w, bad: lead.add_task(AgentTask(bad, "review")),
    "task type": lambda m, lead, w, bad: lead.add_task(AgentTask("t1", bad)),
    "task in a batch": lambda m, lead, w, bad: lead.add_tasks([AgentTask("ok-1", "review"), AgentTask(bad, "review")]),
    "claim type": lambda m, lead, w, bad: lead.claim_task("alpha", bad),
    "complete task": lambda m, lead, w, bad: lead.complete_task(bad, {}, agent_id="alpha"),
    "get task": lambda m, lead, w, bad: lead.get_task(bad),
    "signal type": lambda m, lead, w, bad: m.send_signal(w, bad, {}),
    "signal target": lambda m, lead, w, bad: m.send_signal(w, "ping", {}, target_agent=bad),
    "receive type": lambda m, lead, w, bad: m.receive_signals(w, bad),
    "session id": lambda m, lead, w, bad: TeamSession(m, bad, "p", team_id=TEAM, credentials=w),
    "session context key": lambda m, lead, w, bad: TeamSession(m, "triage", team_id=TEAM, credentials=w).share(bad, 1),
    "pattern id": lambda m, lead, w, bad: m.stage_pattern(w, StagedPattern(bad, "alpha", "security", "n")),
    "pattern type": lambda m, lead, w, bad: m.stage_pattern(w, StagedPattern("p1", "alpha", bad, "n")),
    "state session": lambda m, lead, w, bad: m.persist_state(w, bad, {"a": 1}),
}


def test_it_refuses_hostile_ids_and_stores_nothing(world):
    memory, lead, worker, examples = world

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
    @given(bad=hostile_ids, operation=st.sampled_from(sorted(ID_OPERATIONS)))
    def check(bad, operation):
        EXAMPLES["hostile ids"] += 1
        before = key_count(memory)
        with pytest.raises(InvalidInputError) as caught:
            ID_OPERATIONS[operation](memory, lead, worker, bad)
        assert isinstance(caught.value, ValueError)
        assert "invalid" in str(caught.value) or "must be" in str(caught.value), str(caught.value)
        assert key_count(memory) == before, f"{operation} stored something for {bad!r}"

    check()


def test_it_round_trips_any_json_value(world):
    memory, lead, worker, examples = world

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=json_values)
    def check(value):
        EXAMPLES["JSON values"] += 1
        memory.stash(worker, "v", value)
        assert memory.retrieve(worker, "v") == value

    check()


def test_it_refuses_values_that_are_not_json_and_stores_nothing(world):
    memory, lead, worker, examples = world

    @settings(max_examples=min(examples, 50), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=not_json, where=st.sampled_from(["stash", "task context", "signal", "state", "share"]))
    def check(value, where):
        EXAMPLES["non-JSON values"] += 1
        before = key_count(memory)
        with pytest.raises(InvalidInputError):
            store(memory, lead, worker, where, {"x": value})
        assert key_count(memory) == before

    check()


def store(memory, lead, worker, where: str, value) -> None:
    if where == "stash":
        memory.stash(worker, "v", value)
    elif where == "task context":
        lead.add_task(AgentTask("t-big", "review", context=value))
    elif where == "signal":
        memory.send_signal(worker, "ping", value)
    elif where == "state":
        memory.persist_state(worker, "triage", value)
    else:
        TeamSession(memory, "triage", team_id=TEAM, credentials=worker).share("k", value)


@pytest.mark.parametrize("where", ["stash", "task context", "signal", "state", "share"])
@pytest.mark.parametrize("value", [
    pytest.param(nested(100_000), id="100k nested lists"),
    pytest.param(nested(100_000, "dict"), id="100k nested dicts"),
    pytest.param("x" * (LIMIT + 1), id="oversize string"),
    pytest.param(["é" * 1000] * (LIMIT // 2000 + 1), id="oversize in UTF-8 bytes"),
])
def test_it_refuses_deep_or_oversize_values_and_stores_nothing(world, where, value):
    memory, lead, worker, _ = world
    before = key_count(memory)
    with pytest.raises(InvalidInputError) as caught:
        store(memory, lead, worker, where, {"x": value})
    if isinstance(value, str) or isinstance(value, list) and isinstance(value[0], str):
        assert isinstance(caught.value, ValueTooLargeError) and "max_value_bytes" in str(caught.value)
    else:
        assert "nested too deeply" in str(caught.value)
    assert key_count(memory) == before


def test_it_accepts_a_value_just_under_the_limit(world):
    memory, lead, worker, _ = world
    value = "x" * (LIMIT - 2)  # JSON adds the two quotes
    memory.stash(worker, "v", value)
    assert memory.retrieve(worker, "v") == value


# -- the HTTP API -------------------------------------------------------------------------------------


@pytest.fixture
def api_memory(transactional_db):
    memory = mock_memory()
    with memory_in_use(memory):
        token = issue_token("alpha", TEAM, "steward", created_by="tests")[0]
        # A first request caches the token's credentials (one key): the key counts below start after it.
        assert send("GET", "/results", None, token).status_code == 200
        yield memory, token


def send(method: str, path: str, body, token: str):
    """``body``: JSON data, or the raw text of a body (bytes or str)."""
    raw = isinstance(body, (bytes, str))
    return Api().request(method, path, None if raw else body, data=body if raw else None, token=token)


def assert_json_error(response, statuses) -> dict:
    body = assert_error(response, statuses)
    assert "Traceback" not in body["detail"] and "RecursionError" not in body["detail"]
    return body


def test_it_answers_413_to_oversize_bodies(api_memory):
    memory, token = api_memory
    before = key_count(memory)
    over_the_request_limit = b'{"value": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    assert_json_error(send("PUT", "/memory/big", over_the_request_limit, token), {413})
    over_the_value_limit = {"value": "x" * (LIMIT + 10)}
    assert assert_json_error(send("PUT", "/memory/big", over_the_value_limit, token), {413})["error"] == "too_large"
    assert_json_error(send("POST", "/tasks", {"task_id": "t1", "task_type": "review",
                                              "context": {"x": "y" * (LIMIT + 10)}}, token), {413})
    assert key_count(memory) == before


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("path,wrap", [
    ("/memory/deep", lambda inner: '{"value": ' + inner + "}"),
    ("/signals", lambda inner: '{"signal_type": "ping", "data": ' + inner + "}"),
    ("/tasks", lambda inner: '{"task_id": "t1", "task_type": "review", "context": {"x": ' + inner + "}}"),
    ("/state/s1", lambda inner: '{"state": {"x": ' + inner + "}}"),
])
def test_it_answers_400_to_deeply_nested_json(api_memory, depth, path, wrap):
    memory, token = api_memory
    before = key_count(memory)
    method = "PUT" if path.startswith(("/memory", "/state")) else "POST"
    for inner in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        body = assert_json_error(send(method, path, wrap(inner), token), {400, 413})
        assert body["error"] in ("invalid_input", "too_large")
    assert key_count(memory) == before


BAD_PATH_IDS = ["a:b", "%2A", "%7Bteam%3Ax%7D", "a%20b", "caf%C3%A9", "%E2%80%AEevil", "a" * 300, "..", ".hidden",
                "a%00b", "%3A"]


@pytest.mark.parametrize("bad", BAD_PATH_IDS)
@pytest.mark.parametrize("method,template,body", [
    ("PUT", "/memory/{}", {"value": 1}),
    ("GET", "/memory/{}", None),
    ("GET", "/tasks/{}", None),
    ("POST", "/tasks/{}/complete", {"result": {}}),
    ("GET", "/sessions/{}", None),
    ("PUT", "/sessions/{}/context/k", {"value": 1}),
    ("POST", "/patterns/staged/{}/promote", {}),
    ("PUT", "/state/{}", {"state": {}}),
])
def test_it_answers_4xx_json_to_bad_ids_in_paths(api_memory, bad, method, template, body):
    memory, token = api_memory
    before = key_count(memory)
    response = send(method, template.format(bad), body, token)
    assert_json_error(response, {400, 404})
    assert key_count(memory) == before


@pytest.mark.parametrize("field", ["task_id", "task_type"])
@pytest.mark.parametrize("bad", ["a:b", "*", "{x}", "a b", "é", "", "a" * 129])
def test_it_answers_400_to_bad_ids_in_bodies(api_memory, field, bad):
    memory, token = api_memory
    before = key_count(memory)
    task = {"task_id": "t1", "task_type": "review", field: bad}
    assert assert_json_error(send("POST", "/tasks", [{"task_id": "ok", "task_type": "review"}, task], token),
                             {400})["error"] == "invalid_input"
    assert key_count(memory) == before  # the valid task of the batch was not stored either

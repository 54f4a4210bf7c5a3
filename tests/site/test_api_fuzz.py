"""Property-based fuzzing of /api/v1 from its own OpenAPI schema (schemathesis), in process.

Every operation of the schema gets generated requests, valid and invalid (schemathesis' positive and
negative modes), sent with a valid contributor token through the real ASGI application
(``empathy_site.asgi.application``, what daphne serves) on the mock backend. No answer may be a 5xx,
and every 4xx must be the API's JSON error body. The number of examples is bounded so the whole
module runs in seconds.
"""

from __future__ import annotations

import json

import fakeredis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from coordination.memory import memory_in_use
from empathy_os import RedisShortTermMemory
from empathy_site.asgi import application

from .conftest import TEAM

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 30

schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", application)


@pytest.fixture
def fuzz_memory():
    """A fresh fakeredis memory as the site's memory (the fuzzing runs on the mock backend)."""
    memory = RedisShortTermMemory(client=fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True))
    with memory_in_use(memory):
        yield memory


@pytest.fixture
def contributor_headers(make_token):
    return {"Authorization": f"Bearer {make_token('contributor', 'fuzzer', team=TEAM).token}"}


def bounded_wait(case) -> None:
    """Keep long-polls short: a generated ``wait`` of up to 30 s would only make the run slow."""
    if case.operation.path.endswith("/signals") and case.method.upper() == "GET" and case.query:
        wait = case.query.get("wait")
        try:
            number = float(wait)
        except (TypeError, ValueError, OverflowError):
            return
        if 0 < number <= 30:
            case.query["wait"] = 0.01


def test_the_schema_lists_every_operation():
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert len(operations) >= 30
    assert ("POST", "/api/v1/patterns/staged/{pattern_id}/promote") in operations


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_input_makes_the_api_fail(case, fuzz_memory, contributor_headers):
    bounded_wait(case)
    response = case.call(headers=contributor_headers)
    where = f"{case.method.upper()} {case.formatted_path} -> {response.status_code}: {response.content[:300]!r}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), where
        body = json.loads(response.content)
        assert set(body) == {"error", "detail"}, where
        assert isinstance(body["error"], str) and isinstance(body["detail"], str), where

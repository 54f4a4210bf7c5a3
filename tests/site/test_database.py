"""The durable data on the database of the run: SQLite, and (second pass of ``./setup.sh test``) the
session's private PostgreSQL. The race between validators with two real connections, a database that
does not answer (503 for the API and the pages, nothing staged lost), text PostgreSQL cannot store.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import fakeredis
import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import Client

from empathy_os import AccessTier, AgentCredentials, ConflictError, RedisShortTermMemory, StagedPattern
from patterns import library
from patterns.models import LibraryPattern, PatternDecision
from tests.support import Api, assert_error, free_port, logged_in, tier_user

pytestmark = pytest.mark.django_db(transaction=True)

VALIDATOR = AgentCredentials("val-1", AccessTier.VALIDATOR, "t1")
AUTHOR = AgentCredentials("author", AccessTier.CONTRIBUTOR, "t1")


def stage(memory, pattern_id="p1", **fields) -> StagedPattern:
    values = dict(pattern_type="security", name="Parameterised queries", description="Bound parameters",
                  confidence=0.9, code="cursor.execute(sql, [tid])", context={"language": "python"})
    values.update(fields)
    pattern = StagedPattern(pattern_id, AUTHOR.agent_id, **values)
    memory.stage_pattern(AUTHOR, pattern)
    return pattern


def staged_ids(memory) -> list[str]:
    return [p.pattern_id for p in memory.get_staged_patterns(AUTHOR)]


def test_it_runs_on_the_database_the_session_chose():
    assert connection.vendor == settings.EMPATHY_TEST_DATABASE
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_two_validators_whose_redis_both_let_the_pattern_through_promote_it_once(db):
    """Redis decides first (one promote wins there); the database's unique constraint is the second
    guard. Here Redis cannot decide (each validator's memory holds the pattern: a failover lost the
    first decision), so two real database connections insert the same pattern at once: one row."""
    memories = [RedisShortTermMemory(client=fakeredis.FakeRedis(server=fakeredis.FakeServer(),
                                                                decode_responses=True)) for _ in range(2)]
    for memory in memories:
        stage(memory, "raced")
    barrier = threading.Barrier(2)
    outcomes, backends = {}, set()

    def promote(i, memory):
        credentials = AgentCredentials(f"val-{i}", AccessTier.VALIDATOR, "t1")
        try:
            with connection.cursor() as cursor:  # this thread's own connection
                backends.add(id(cursor.connection))
            barrier.wait(5)
            library.promote(memory, credentials, "raced", note=f"by {i}")
            outcomes[i] = "promoted"
        except ConflictError:
            outcomes[i] = "conflict"
        except Exception as exc:  # shown in the assertion below
            outcomes[i] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=promote, args=(i, m)) for i, m in enumerate(memories)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(backends) == 2
    assert sorted(outcomes.values()) == ["conflict", "promoted"], outcomes
    winner = next(i for i, outcome in outcomes.items() if outcome == "promoted")
    loser = 1 - winner
    assert LibraryPattern.objects.filter(pattern_id="raced").count() == 1
    assert PatternDecision.objects.get(pattern_id="raced").decided_by == f"val-{winner}"
    # the loser's transaction left nothing behind, and its pattern went back to its staging
    assert PatternDecision.objects.count() == 1
    assert staged_ids(memories[loser]) == ["raced"] and staged_ids(memories[winner]) == []


@contextmanager
def database_down():
    """The site's database stops answering: this thread's connection is replaced by one to a database
    that is not there (PostgreSQL: a port nothing listens on; SQLite: a file in a missing directory),
    so the driver itself fails to connect. The real connection comes back afterwards."""
    real = connections["default"]
    gone = dict(real.settings_dict)
    if real.vendor == "postgresql":
        gone["PORT"] = str(free_port())
    else:
        gone["NAME"] = "/nonexistent-empathy-dir/db.sqlite3"
    dead = type(real)(gone, "default")
    connections["default"] = dead
    try:
        yield
    finally:
        dead.close()
        connections["default"] = real


@pytest.mark.parametrize("debug", [False, True])
def test_a_database_that_is_down_is_a_json_503_for_the_api_and_nothing_staged_is_lost(site_memory, agents,
                                                                                      settings, debug):
    settings.DEBUG = debug
    stage(site_memory, "p1")
    api = Api()
    with database_down():
        for method, path, body in [("GET", "/patterns/staged", None), ("POST", "/patterns/staged/p1/promote", {}),
                                   ("GET", "/patterns/library?q=x", None)]:
            response = api.request(method, path, body, token=agents["validator"])
            assert_error(response, 503, "database_unavailable")
            assert response["Retry-After"] == "1"
            assert b"Traceback" not in response.content
        # agents on the library go on staging while the database is down
        stage(site_memory, "p2")
    assert sorted(staged_ids(site_memory)) == ["p1", "p2"]
    again = api.post("/patterns/staged/p1/promote", {"note": "back"}, token=agents["validator"])
    assert again.status_code == 200, again.content
    assert list(LibraryPattern.objects.values_list("pattern_id", flat=True)) == ["p1"]
    assert staged_ids(site_memory) == ["p2"]


def test_a_database_that_is_down_is_a_readable_503_page(site_memory):
    person = logged_in(tier_user("vera", "validator"), raise_request_exception=False)
    stage(site_memory, "p1")
    with database_down():
        for page in ("/patterns/staging/", "/patterns/library/", "/"):
            response = person.get(page)
            assert response.status_code == 503, (page, response.status_code)
            text = response.content.decode()
            assert "Database offline" in text and "Traceback" not in text
            assert response["Retry-After"] == "5"
        refused = Client(raise_request_exception=False).post("/accounts/login/", {"username": "vera", "password": "x"})
        assert refused.status_code == 503 and "Database offline" in refused.content.decode()
    assert staged_ids(site_memory) == ["p1"]
    assert person.get("/patterns/staging/").status_code == 200


def test_a_pattern_with_nul_characters_is_not_promoted_and_stays_staged(site_memory):
    stage(site_memory, "p1", code="x = '\x00'")
    with pytest.raises(ValueError, match="NUL"):
        library.promote(site_memory, VALIDATOR, "p1")
    assert staged_ids(site_memory) == ["p1"] and not LibraryPattern.objects.exists()
    assert not PatternDecision.objects.exists()


def test_a_pattern_with_nul_characters_can_be_rejected_and_the_audit_keeps_a_readable_copy(site_memory):
    stage(site_memory, "p1", name="bad\x00name", context={"k\x00": ["v\x00"]})
    decision = library.reject(site_memory, VALIDATOR, "p1", "has a\x00NUL")
    decision.refresh_from_db()
    assert decision.note == "has a\ufffdNUL"
    assert decision.pattern["name"] == "bad\ufffdname" and decision.pattern["context"] == {"k\ufffd": ["v\ufffd"]}
    assert staged_ids(site_memory) == []


def test_a_search_with_nul_characters_finds_nothing_and_counts_a_miss(site_memory):
    stage(site_memory, "p1")
    library.promote(site_memory, VALIDATOR, "p1")
    assert library.search("t1", "Param") != []
    assert library.search("t1", "Param\x00") == [] and library.search("t1", "", "security\x00") == []
    assert library.reuse_rate("t1") == pytest.approx(1 / 3)

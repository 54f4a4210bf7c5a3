"""The review queue (/patterns/staging/ and its POST endpoints), the library and the decisions audit.

Every test runs on both backends (the ``memory`` fixture); decisions land in the database through
``patterns.library`` exactly once.
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from coordination.memory import memory_in_use
from empathy_os import (
    AccessTier,
    AgentCredentials,
    RedisShortTermMemory,
    StagedPattern,
)
from patterns import library
from patterns.models import LibraryLookup, LibraryPattern, PatternDecision
from tests.support import free_port, logged_in, review_lock_holder, tier_user

pytestmark = pytest.mark.django_db

STAGING = "/patterns/staging/"


@pytest.fixture
def users(db):
    """One person per tier, plus a second validator: ``users["validator"]``, ``users["validator2"]``."""

    people = {tier.name.lower(): tier_user(tier.name.lower(), tier.name.lower()) for tier in AccessTier}
    people["validator2"] = tier_user("val2", "validator")
    return people


@pytest.fixture
def validator(users):
    return logged_in(users["validator"])


@pytest.fixture
def validator2(users):
    return logged_in(users["validator2"])


def stage(memory, pattern_id="p1", team="t1", agent="perf", **fields):
    values = dict(pattern_type="optimization", name="Eager loading", description="Use select_related",
                  confidence=0.88, code="User.objects.select_related('profile')",
                  context={"session_id": "review-42", "file": "views.py"})
    values.update(fields)
    pattern = StagedPattern(pattern_id, agent, **values)
    memory.stage_pattern(AgentCredentials(agent, AccessTier.CONTRIBUTOR, team), pattern)
    return pattern


def url(team, pattern_id, action):
    return f"{STAGING}{team}/{pattern_id}/{action}/"


def html(response) -> str:
    return response.content.decode()


def staged_ids(memory, team="t1"):
    credentials = AgentCredentials("look", AccessTier.OBSERVER, team)
    return [p.pattern_id for p in memory.get_staged_patterns(credentials)]


# -- the queue page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [STAGING, "/patterns/library/", "/patterns/decisions/"])
def test_it_sends_anonymous_people_to_log_in(client, site_memory, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("tier", ["observer", "contributor"])
def test_it_refuses_the_queue_below_validator(site_memory, users, tier):
    assert logged_in(users[tier]).get(STAGING).status_code == 403


@pytest.mark.parametrize("tier", ["validator", "steward"])
def test_it_shows_staged_patterns_of_every_team_to_validators(site_memory, users, tier):
    stage(site_memory, "p1", team="t1")
    stage(site_memory, "p2", team="t2", agent="sec", pattern_type="security", name="Validate input", confidence=0.5)
    response = logged_in(users[tier]).get(STAGING)
    assert response.status_code == 200
    page = html(response)
    assert 'hx-ext="ws" ws-connect="/ws/patterns/staging/"' in page
    assert 'id="staged-list"' in page
    assert '<article id="pattern-t1--p1"' in page and '<article id="pattern-t2--p2"' in page
    for text in ("Eager loading", "optimization", "88%", "perf", "review-42", "Use select_related",
                 "Validate input", "security", "50%", "sec", "&quot;file&quot;: &quot;views.py&quot;"):
        assert text in page
    assert '<pre class="code">' in page and '<span class="n">select_related</span>' in page
    assert page.count(">Approve</button>") == 2 and page.count(">Reject</button>") == 2
    assert page.count('<input type="checkbox" class="select"') == 2
    assert '<dialog id="reject-dialog"' in page and '<textarea name="reason"' in page
    assert ">Reject pattern</button>" in page
    assert ">Approve selected</button>" in page and ">Reject selected</button>" in page
    assert 'id="memory-status"' in page and ">live<" in page


def test_it_lists_the_newest_pattern_first(site_memory, validator):
    stage(site_memory, "older", staged_at=1_700_000_000.0)
    stage(site_memory, "newer", team="t2", staged_at=1_700_000_100.0)
    page = html(validator.get(STAGING))
    assert page.index('id="pattern-t2--newer"') < page.index('id="pattern-t1--older"')


def test_it_escapes_code_and_text_from_agents(site_memory, validator):
    stage(site_memory, "xss", name="<img src=x onerror=alert(1)>", description="<script>alert(2)</script>",
          code="<script>alert(1)</script>\n<img src=x onerror=alert(1)>",
          context={"note": "<script>alert(3)</script>", "language": "text"})
    page = html(validator.get(STAGING))
    card = page[page.index('<article id="pattern-t1--xss"'):page.index("</article>")]
    assert "<script>" not in card and "<img" not in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card  # the code, escaped by Pygments
    assert "&lt;img src=x onerror=alert(1)&gt;" in card  # the code's second line and the name
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in card  # description
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in card  # context


def test_it_escapes_code_it_highlights(site_memory, validator):
    stage(site_memory, "xss", code="<script>alert(1)</script>\n<img src=x onerror=alert(1)>")  # highlighted as Python
    page = html(validator.get(STAGING))
    assert "<script>alert(1)</script>" not in page and "<img src=x onerror=alert(1)>" not in page
    assert '<span class="o">&lt;</span><span class="n">script</span>' in page


def test_it_flags_a_rediscovery_of_a_library_pattern(site_memory, validator):
    stage(site_memory, "p1")
    assert validator.post(url("t1", "p1", "approve")).status_code == 200
    stage(site_memory, "p2", agent="other", name="Same thing, new name")
    page = html(validator.get(STAGING))
    card = page[page.index('<article id="pattern-t1--p2"'):]
    assert '<span class="badge rediscovery"' in card and "rediscovery of p1" in card


def test_it_says_when_the_memory_is_offline(users):
    with memory_in_use(RedisShortTermMemory(f"redis://127.0.0.1:{free_port()}/0")):
        response = logged_in(users["validator"]).get(STAGING)
    assert response.status_code == 200
    assert "memory offline" in html(response)


def test_it_refuses_other_methods(site_memory, validator):
    stage(site_memory)
    assert validator.post(STAGING).status_code == 405
    assert validator.get(url("t1", "p1", "approve")).status_code == 405
    assert validator.get(f"{STAGING}bulk/").status_code == 405
    assert validator.post("/patterns/library/").status_code == 405
    assert staged_ids(site_memory) == ["p1"]


# -- decisions --------------------------------------------------------------------------------------


def test_it_approves_a_pattern_into_the_library_exactly_once(site_memory, validator):
    stage(site_memory)
    response = validator.post(url("t1", "p1", "approve"))
    assert response.status_code == 200
    body = html(response)
    assert 'id="review-message" hx-swap-oob="true"' in body and "Approved p1." in body
    assert '<div id="staged-list" hx-swap-oob="true"' in body and "pattern-t1--p1" not in body
    again = validator.post(url("t1", "p1", "approve"))
    assert again.status_code == 409 and "already promoted by validator" in html(again)
    row = LibraryPattern.objects.get()
    assert (row.team_id, row.pattern_id, row.promoted_by, row.discovered_by) == ("t1", "p1", "human-validator", "perf")
    decision = PatternDecision.objects.get()
    assert (decision.decision, decision.decided_by) == ("promoted", "human-validator")
    assert staged_ids(site_memory) == []


@pytest.mark.parametrize("endpoint", ["single", "bulk"])
def test_it_rejects_with_a_reason_exactly_once(site_memory, validator, endpoint):
    stage(site_memory)

    def post():
        if endpoint == "single":
            return validator.post(url("t1", "p1", "reject"), {"reason": "  too specific  "})
        return validator.post(f"{STAGING}bulk/", {"action": "reject", "selected": "t1:p1", "reason": "too specific"})

    response = post()
    assert response.status_code == 200 and "Rejected p1." in html(response)
    assert post().status_code == 409
    decision = PatternDecision.objects.get()
    assert (decision.decision, decision.decided_by, decision.note) == ("rejected", "human-validator", "too specific")
    assert decision.pattern["name"] == "Eager loading"
    assert not LibraryPattern.objects.exists()


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_it_refuses_a_reject_without_a_reason(site_memory, validator, reason):
    stage(site_memory)
    data = {} if reason is None else {"reason": reason}
    single = validator.post(url("t1", "p1", "reject"), data)
    bulk = validator.post(f"{STAGING}bulk/", {"action": "reject", "selected": ["t1:p1"], **data})
    for response in (single, bulk):
        assert response.status_code == 400
        assert "Give a reason" in html(response)
    assert staged_ids(site_memory) == ["p1"] and not PatternDecision.objects.exists()


def test_it_enforces_csrf_on_decisions(site_memory, users):
    stage(site_memory)
    browser = logged_in(users["validator"], enforce_csrf_checks=True)
    assert browser.post(url("t1", "p1", "approve")).status_code == 403
    assert browser.post(url("t1", "p1", "lock")).status_code == 403
    assert staged_ids(site_memory) == ["p1"] and review_lock_holder(site_memory, _validator_creds(), "p1") is None
    page = html(browser.get(STAGING))
    token = browser.cookies["csrftoken"].value
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    assert browser.post(url("t1", "p1", "approve"), headers={"X-CSRFToken": token}).status_code == 200
    assert LibraryPattern.objects.count() == 1


def _validator_creds(team="t1", name="validator"):
    return AgentCredentials(f"human-{name}", AccessTier.VALIDATOR, team)


@pytest.mark.parametrize("tier", ["observer", "contributor"])
def test_it_refuses_decisions_and_locks_below_validator(site_memory, users, tier):
    stage(site_memory)
    person = logged_in(users[tier])
    assert person.post(url("t1", "p1", "approve")).status_code == 403
    assert person.post(url("t1", "p1", "reject"), {"reason": "no"}).status_code == 403
    assert person.post(url("t1", "p1", "lock")).status_code == 403
    assert person.post(f"{STAGING}bulk/", {"action": "approve", "selected": "t1:p1"}).status_code == 403
    assert staged_ids(site_memory) == ["p1"] and not PatternDecision.objects.exists()


@pytest.mark.parametrize("path,data,status", [
    (url("bad team", "p1", "approve"), {}, 400),
    (url("t1", "-p1", "approve"), {}, 400),
    (url("t1", "x" * 200, "lock"), {}, 400),
    (url("t1", "missing", "approve"), {}, 404),
    (url("t1", "missing", "reject"), {"reason": "no"}, 404),
    (url("t1", "missing", "lock"), {}, 404),
    (f"{STAGING}bulk/", {"action": "approve"}, 400),
    (f"{STAGING}bulk/", {"action": "delete", "selected": "t1:p1"}, 400),
    (f"{STAGING}bulk/", {"action": "approve", "selected": "t1p1"}, 400),
    (f"{STAGING}bulk/", {"action": "approve", "selected": ":p1"}, 400),
    (f"{STAGING}bulk/", {"action": "approve", "selected": "t 1:p1"}, 400),
    (f"{STAGING}bulk/", {"action": "approve", "selected": [f"t1:p{i}" for i in range(201)]}, 400),
])
def test_it_answers_bad_input_with_a_message_not_a_crash(site_memory, validator, path, data, status):
    stage(site_memory)
    response = validator.post(path, data)
    assert response.status_code == status
    assert 'id="review-message"' in html(response)
    assert staged_ids(site_memory) == ["p1"]


def test_it_approves_and_rejects_in_bulk_across_teams(site_memory, validator):
    for pattern_id, team in (("a", "t1"), ("b", "t1"), ("c", "t2"), ("d", "t2")):
        stage(site_memory, pattern_id, team=team, code=f"code_{pattern_id}()")
    approved = validator.post(f"{STAGING}bulk/", {"action": "approve", "selected": ["t1:a", "t2:c", "t2:c"]})
    assert approved.status_code == 200 and "Approved a, c." in html(approved)
    rejected = validator.post(f"{STAGING}bulk/", {"action": "reject", "selected": ["t1:b", "t2:d"], "reason": "dup"})
    assert rejected.status_code == 200
    assert sorted(LibraryPattern.objects.values_list("team_id", "pattern_id")) == [("t1", "a"), ("t2", "c")]
    assert sorted(PatternDecision.objects.values_list("pattern_id", "decision")) == [
        ("a", "promoted"), ("b", "rejected"), ("c", "promoted"), ("d", "rejected")]
    assert staged_ids(site_memory, "t1") == [] and staged_ids(site_memory, "t2") == []


def test_it_reports_each_refusal_of_a_bulk_action(site_memory, validator, validator2):
    stage(site_memory, "free")
    stage(site_memory, "taken", code="other()")
    assert validator2.post(url("t1", "taken", "lock")).status_code == 204
    response = validator.post(f"{STAGING}bulk/", {"action": "approve", "selected": ["t1:free", "t1:taken", "t1:gone"]})
    assert response.status_code == 200
    body = html(response)
    assert "Approved free." in body and "taken is being reviewed by val2" in body and "gone" in body
    assert "review-warn" in body
    assert staged_ids(site_memory) == ["taken"]
    everything_refused = validator.post(f"{STAGING}bulk/", {"action": "approve", "selected": ["t1:taken"]})
    assert everything_refused.status_code == 409


def test_it_answers_503_and_keeps_the_pattern_when_the_library_fails(site_memory, validator, monkeypatch):
    stage(site_memory)

    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(PatternDecision.objects, "create", broken)
    response = validator.post(url("t1", "p1", "approve"))
    assert response.status_code == 503 and "back in staging" in html(response)
    assert staged_ids(site_memory) == ["p1"]


# -- review locks -----------------------------------------------------------------------------------


def test_it_refuses_a_decision_while_another_validator_reviews(site_memory, validator, validator2):
    stage(site_memory)
    assert validator.post(url("t1", "p1", "lock")).status_code == 204
    taken = validator2.post(url("t1", "p1", "lock"))
    assert taken.status_code == 409 and "p1 is being reviewed by validator" in html(taken)
    refused = validator2.post(url("t1", "p1", "approve"))
    assert refused.status_code == 409 and "being reviewed by validator" in html(refused)
    assert validator2.post(url("t1", "p1", "reject"), {"reason": "no"}).status_code == 409
    assert staged_ids(site_memory) == ["p1"] and not PatternDecision.objects.exists()
    assert validator.post(url("t1", "p1", "approve")).status_code == 200
    assert PatternDecision.objects.get().decided_by == "human-validator"
    assert review_lock_holder(site_memory, _validator_creds(), "p1") is None  # released with the decision


def test_it_shows_who_reviews_a_pattern(site_memory, validator, validator2):
    stage(site_memory)
    validator.post(url("t1", "p1", "lock"))
    theirs = html(validator2.get(STAGING))
    mine = html(validator.get(STAGING))
    assert 'class="pattern locked"' in theirs and ">being reviewed by validator</span>" in theirs
    assert 'class="badge lock mine"' in mine and ">being reviewed by you</span>" in mine


def test_it_lets_only_the_holder_unlock(site_memory, validator, validator2):
    stage(site_memory)
    validator.post(url("t1", "p1", "lock"))
    assert validator2.post(url("t1", "p1", "unlock")).status_code == 204
    assert review_lock_holder(site_memory, _validator_creds(), "p1") == "human-validator"
    assert validator.post(url("t1", "p1", "unlock")).status_code == 204
    assert review_lock_holder(site_memory, _validator_creds(), "p1") is None
    assert validator2.post(url("t1", "p1", "lock")).status_code == 204


# -- library ----------------------------------------------------------------------------------------


def _promote(memory, pattern_id, team="t1", **fields):
    stage(memory, pattern_id, team=team, **fields)
    return library.promote(memory, _validator_creds(team), pattern_id)


def test_it_lists_the_library_with_reuse_counts_without_counting_people(site_memory, users):
    _promote(site_memory, "p1", name="Eager loading", code="a()")
    _promote(site_memory, "p2", team="t2", name="<b>Bold</b>", code="b()")
    LibraryPattern.objects.filter(pattern_id="p1").update(reuse_count=7)
    response = logged_in(users["observer"]).get("/patterns/library/")
    assert response.status_code == 200
    page = html(response)
    assert '<article id="library-t1--p1"' in page and '<article id="library-t2--p2"' in page
    assert "reused 7 times" in page and "reused 0 times" in page and 'class="reuse"' in page
    assert "&lt;b&gt;Bold&lt;/b&gt;" in page and "<b>Bold</b>" not in page
    assert 'name="q"' in page and 'name="type"' in page
    assert LibraryPattern.objects.get(pattern_id="p1").reuse_count == 7
    assert not LibraryLookup.objects.exists()


def test_it_searches_the_library_by_text_and_type(site_memory, users):
    _promote(site_memory, "p1", name="Eager loading", code="a()")
    _promote(site_memory, "p2", name="Input validation", pattern_type="security", code="b()")
    _promote(site_memory, "p3", team="t2", name="Lazy eager", pattern_type="security", code="c()")
    observer = logged_in(users["observer"])
    by_text = html(observer.get("/patterns/library/", {"q": "eager"}))
    assert "library-t1--p1" in by_text and "library-t2--p3" in by_text and "library-t1--p2" not in by_text
    by_both = html(observer.get("/patterns/library/", {"q": "eager", "type": "security"}))
    assert "library-t2--p3" in by_both and "library-t1--p1" not in by_both
    nothing = observer.get("/patterns/library/", {"q": "<script>x</script>" * 50, "type": "\x00"})
    assert nothing.status_code == 200 and "No library pattern matches" in html(nothing)


def test_it_searches_every_team_of_the_library_in_one_query(site_memory, users):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    observer = logged_in(users["observer"])

    def patterns_queries():
        with CaptureQueriesContext(connection) as queries:
            page = html(observer.get("/patterns/library/", {"q": "eager"}))
        return page, [q["sql"] for q in queries if "patterns_librarypattern" in q["sql"]]

    _promote(site_memory, "p0", team="t0", code="x0()")
    page, one_team = patterns_queries()
    for i in range(1, 6):
        _promote(site_memory, f"p{i}", team=f"t{i}", code=f"x{i}()")
    page, six_teams = patterns_queries()
    assert all(f"library-t{i}--p{i}" in page for i in range(6))
    assert len(six_teams) == len(one_team) == 2  # the search, and the list of types
    assert page.index("library-t5--p5") < page.index("library-t0--p0")  # newest first


# -- decisions audit --------------------------------------------------------------------------------


def test_it_lists_decisions_newest_first_with_who_when_and_why(site_memory, users):
    stage(site_memory, "p1")
    stage(site_memory, "p2", code="x()")
    validator = logged_in(users["validator"])
    validator.post(url("t1", "p1", "approve"))
    validator.post(url("t1", "p2", "reject"), {"reason": "<i>not</i> general"})
    response = logged_in(users["observer"]).get("/patterns/decisions/")
    assert response.status_code == 200
    page = html(response)
    assert page.index('id="decision-t1--p2"') < page.index('id="decision-t1--p1"')
    row = page[page.index('<tr id="decision-t1--p2"'):page.index('<tr id="decision-t1--p1"')]
    assert ">validator<" in row and "human-" not in row and "rejected" in row and "&lt;i&gt;not&lt;/i&gt; general" in row
    assert "<time datetime=" in row


def test_it_pages_decisions_by_fifty(site_memory, users):
    PatternDecision.objects.bulk_create(
        PatternDecision(team_id="t1", pattern_id=f"p{i}", decision="promoted", decided_by="v", pattern={})
        for i in range(55))
    observer = logged_in(users["observer"])
    first, second = html(observer.get("/patterns/decisions/")), html(observer.get("/patterns/decisions/?page=2"))
    assert first.count('<tr id="decision-') == 50 and second.count('<tr id="decision-') == 5
    assert "Page 1 of 2" in first and 'rel="next"' in first
    assert observer.get("/patterns/decisions/?page=nonsense").status_code == 200

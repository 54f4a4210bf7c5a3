"""Pattern staging and validation, conflict contexts, collaboration state."""

import threading

import pytest

from empathy_os import (
    AccessDeniedError,
    AccessTier,
    ConflictError,
    EmpathyOS,
    InvalidInputError,
    NotFoundError,
    StagedPattern,
    get_decision,
)

from .helpers import creds


def pattern(pattern_id="p1", agent_id="perf", **kw):
    fields = dict(pattern_type="optimization", name="Eager loading", description="Use select_related",
                  confidence=0.88, code="User.objects.select_related('profile')")
    fields.update(kw)
    return StagedPattern(pattern_id=pattern_id, agent_id=agent_id, **fields)


def test_it_stages_and_lists_patterns_oldest_first(memory):
    memory.stage_pattern(creds("perf"), pattern("p1"))
    memory.stage_pattern(creds("perf"), pattern("p2", name="Second"))
    staged = memory.get_staged_patterns(creds("v", AccessTier.OBSERVER))
    assert [p.pattern_id for p in staged] == ["p1", "p2"]
    assert staged[0].confidence == 0.88 and staged[0].code.startswith("User")


@pytest.mark.parametrize("confidence", [-0.01, 1.01, "0.5", None, float("nan")])
def test_it_refuses_confidence_outside_zero_to_one(confidence):
    with pytest.raises(ValueError, match="confidence"):
        pattern(confidence=confidence)


@pytest.mark.parametrize("bad", [dict(pattern_id="a b"), dict(name=""), dict(agent_id="x:y"), dict(context=[])])
def test_it_refuses_malformed_patterns(bad):
    with pytest.raises(InvalidInputError):
        pattern(**bad)


def test_it_lets_only_the_owner_overwrite_a_staging(memory):
    memory.stage_pattern(creds("perf"), pattern())
    assert memory.stage_pattern(creds("perf"), pattern(name="Renamed")) is False
    with pytest.raises(AccessDeniedError):
        memory.stage_pattern(creds("sec"), pattern(agent_id="sec", name="Hijack"))
    with pytest.raises(AccessDeniedError):
        memory.stage_pattern(creds("sec"), pattern(agent_id="perf"))  # cannot stage as another agent
    assert memory.get_staged_patterns(creds("v"))[0].name == "Renamed"


def test_it_promotes_once_and_records_the_decision(memory):
    memory.stage_pattern(creds("perf"), pattern())
    validator = creds("architect", AccessTier.VALIDATOR)
    promoted = memory.promote_pattern(validator, "p1", note="solid")
    assert promoted.name == "Eager loading"
    assert memory.get_staged_patterns(validator) == []
    decision = get_decision(memory, validator, "p1")
    assert (decision["decision"], decision["decided_by"], decision["note"]) == ("promoted", "architect", "solid")
    with pytest.raises(ConflictError, match="already promoted by architect"):
        memory.reject_pattern(validator, "p1", "too late")


def test_it_promotes_exactly_once_with_validators_racing(memory):
    memory.stage_pattern(creds("perf"), pattern())
    outcomes = []

    def decide(name):
        try:
            memory.promote_pattern(creds(name, AccessTier.VALIDATOR), "p1")
            outcomes.append("promoted")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=decide, args=(f"v{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["promoted"] + ["refused"] * 5


def test_it_rejects_with_a_reason_only(memory):
    memory.stage_pattern(creds("perf"), pattern())
    validator = creds("architect", AccessTier.VALIDATOR)
    with pytest.raises(InvalidInputError, match="reason"):
        memory.reject_pattern(validator, "p1", "")
    assert len(memory.get_staged_patterns(validator)) == 1
    memory.reject_pattern(validator, "p1", "duplicates an existing pattern")
    assert get_decision(memory, validator, "p1")["note"] == "duplicates an existing pattern"
    with pytest.raises(NotFoundError):
        memory.promote_pattern(validator, "never_staged")


def test_it_refuses_decisions_from_contributors(memory):
    memory.stage_pattern(creds("perf"), pattern())
    with pytest.raises(AccessDeniedError, match="validator"):
        memory.promote_pattern(creds("perf"), "p1")
    with pytest.raises(AccessDeniedError):
        memory.reject_pattern(creds("perf"), "p1", "no")


def test_it_fingerprints_rediscoveries(memory):
    a = pattern("p1", code="x = 1\n\n  y = 2")
    b = pattern("p2", agent_id="sec", name="Other name", code="x = 1 y = 2")
    assert a.content_hash == b.content_hash
    assert a.content_hash != pattern("p3", code="z = 3").content_hash


def test_it_resolves_a_conflict_once_by_a_validator(memory):
    contributor = creds("sec")
    conflict = memory.create_conflict_context(contributor, "c1", {"sec": "block the PR", "perf": "ship it"},
                                              interests={"sec": ["safety"], "perf": ["speed"]})
    assert (conflict.resolved, conflict.positions["sec"]) == (False, "block the PR")
    with pytest.raises(ConflictError):
        memory.create_conflict_context(contributor, "c1", {"sec": "again"})
    with pytest.raises(AccessDeniedError):
        memory.resolve_conflict(contributor, "c1", "ship")
    resolved = memory.resolve_conflict(creds("lead", AccessTier.VALIDATOR), "c1", {"decision": "ship behind a flag"})
    assert (resolved.resolved, resolved.resolved_by, resolved.resolution) == (True, "lead", {"decision": "ship behind a flag"})
    assert resolved.interests == {"sec": ["safety"], "perf": ["speed"]}
    with pytest.raises(ConflictError, match="already resolved by lead"):
        memory.resolve_conflict(creds("lead2", AccessTier.VALIDATOR), "c1", "other")
    with pytest.raises(NotFoundError):
        memory.resolve_conflict(creds("lead", AccessTier.VALIDATOR), "c2", "x")


def test_it_persists_and_restores_collaboration_state(memory):
    agent = EmpathyOS("long_running", short_term_memory=memory)
    agent.collaboration_state.trust_level = 0.85
    agent.collaboration_state.successful_interventions = 15
    agent.current_empathy_level = 4
    assert agent.persist_collaboration_state()
    fresh = EmpathyOS("long_running", short_term_memory=memory)
    assert fresh.restore_collaboration_state(session_id="unknown") is False
    assert fresh.restore_collaboration_state(session_id=agent.session_id) is True
    assert (fresh.collaboration_state.trust_level, fresh.collaboration_state.successful_interventions) == (0.85, 15)
    assert fresh.current_empathy_level == 4
    stranger = EmpathyOS("someone_else", short_term_memory=memory)
    assert stranger.restore_collaboration_state(session_id=agent.session_id) is False


def test_it_restores_a_decided_pattern_to_staging(memory):
    from empathy_os import restore_staged_pattern

    memory.stage_pattern(creds("perf"), pattern())
    validator = creds("architect", AccessTier.VALIDATOR)
    taken = memory.promote_pattern(validator, "p1")
    restore_staged_pattern(memory, validator, taken)
    [back] = memory.get_staged_patterns(validator)
    assert back == taken
    assert get_decision(memory, validator, "p1") is None
    memory.reject_pattern(validator, "p1", "second look: no")

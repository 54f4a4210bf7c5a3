"""The tier matrix: every operation, every tier. Below the minimum tier: refused, nothing changed."""

import itertools

import pytest

from empathy_os import AccessDeniedError, AccessTier, AgentCoordinator, AgentTask, StagedPattern, TeamSession

from .helpers import creds

STEWARD = creds("boss", AccessTier.STEWARD)
_ids = itertools.count()


def uid(prefix):
    return f"{prefix}{next(_ids)}"


def _pattern(agent):
    return StagedPattern(uid("p"), agent, "kind", "name", confidence=0.5)


def _staged(memory):
    p = _pattern("boss")
    memory.stage_pattern(STEWARD, p)
    return p.pattern_id


def _claimed(memory, agent):
    boss = AgentCoordinator(memory, "t1")
    task_id = uid("task")
    boss.add_task(AgentTask(task_id, "kind"))
    boss.claim_task(agent, "kind")
    return task_id


def _coord(memory, c):
    return AgentCoordinator(memory, "t1", c)


# operation -> (minimum tier, callable(memory, credentials))
OPERATIONS = {
    "stash": (AccessTier.CONTRIBUTOR, lambda m, c: m.stash(c, "k", 1)),
    "retrieve": (AccessTier.OBSERVER, lambda m, c: m.retrieve(c, "k", agent_id="someone")),
    "forget": (AccessTier.CONTRIBUTOR, lambda m, c: m.forget(c, "k")),
    "send_signal": (AccessTier.CONTRIBUTOR, lambda m, c: m.send_signal(c, "x", {})),
    "receive_signals": (AccessTier.OBSERVER, lambda m, c: m.receive_signals(c)),
    "stage_pattern": (AccessTier.CONTRIBUTOR, lambda m, c: m.stage_pattern(c, _pattern(c.agent_id))),
    "get_staged_patterns": (AccessTier.OBSERVER, lambda m, c: m.get_staged_patterns(c)),
    "promote_pattern": (AccessTier.VALIDATOR, lambda m, c: m.promote_pattern(c, _staged(m))),
    "reject_pattern": (AccessTier.VALIDATOR, lambda m, c: m.reject_pattern(c, _staged(m), "no")),
    "create_conflict_context": (AccessTier.CONTRIBUTOR,
                                lambda m, c: m.create_conflict_context(c, uid("c"), {"a": "x", "b": "y"})),
    "resolve_conflict": (AccessTier.VALIDATOR, lambda m, c: m.resolve_conflict(
        c, m.create_conflict_context(STEWARD, uid("c"), {"a": "x"}).conflict_id, "done")),
    "persist_state": (AccessTier.CONTRIBUTOR, lambda m, c: m.persist_state(c, "s1", {"trust": 1})),
    "restore_state": (AccessTier.OBSERVER, lambda m, c: m.restore_state(c, "s1")),
    "register_agent_self": (AccessTier.CONTRIBUTOR, lambda m, c: _coord(m, c).register_agent(c.agent_id, ["kind"])),
    "register_agent_other": (AccessTier.STEWARD, lambda m, c: _coord(m, c).register_agent("other", ["kind"])),
    "heartbeat_self": (AccessTier.CONTRIBUTOR, lambda m, c: _coord(m, c).heartbeat(c.agent_id)),
    "heartbeat_other": (AccessTier.STEWARD, lambda m, c: _coord(m, c).heartbeat("other")),
    "add_task": (AccessTier.CONTRIBUTOR, lambda m, c: _coord(m, c).add_task(AgentTask(uid("t"), "kind"))),
    "claim_task_self": (AccessTier.CONTRIBUTOR, lambda m, c: _coord(m, c).claim_task(c.agent_id, "kind")),
    "claim_task_other": (AccessTier.STEWARD, lambda m, c: _coord(m, c).claim_task("other", "kind")),
    "complete_task": (AccessTier.CONTRIBUTOR,
                      lambda m, c: _coord(m, c).complete_task(_claimed(m, c.agent_id), {}, agent_id=c.agent_id)),
    "fail_task": (AccessTier.CONTRIBUTOR,
                  lambda m, c: _coord(m, c).fail_task(_claimed(m, c.agent_id), "broken", agent_id=c.agent_id)),
    "extend_lease": (AccessTier.CONTRIBUTOR,
                     lambda m, c: _coord(m, c).extend_lease(_claimed(m, c.agent_id), agent_id=c.agent_id)),
    "complete_task_of_other": (AccessTier.STEWARD,
                               lambda m, c: _coord(m, c).complete_task(_claimed(m, "other"), {}, agent_id="other")),
    "aggregate_results": (AccessTier.OBSERVER, lambda m, c: _coord(m, c).aggregate_results()),
    "list_tasks": (AccessTier.OBSERVER, lambda m, c: _coord(m, c).list_tasks("pending")),
    "get_active_agents": (AccessTier.OBSERVER, lambda m, c: _coord(m, c).get_active_agents()),
    "broadcast": (AccessTier.CONTRIBUTOR, lambda m, c: _coord(m, c).broadcast("x", {})),
    "session_join_self": (AccessTier.CONTRIBUTOR,
                          lambda m, c: TeamSession(m, "s1", team_id="t1", credentials=c).add_agent(c.agent_id)),
    "session_join_other": (AccessTier.STEWARD,
                           lambda m, c: TeamSession(m, "s1", team_id="t1", credentials=c).add_agent("other")),
    "session_share": (AccessTier.CONTRIBUTOR,
                      lambda m, c: TeamSession(m, "s1", team_id="t1", credentials=c).share("k", 1)),
    "session_read": (AccessTier.OBSERVER, lambda m, c: TeamSession(m, "s1", team_id="t1", credentials=c).get_info()),
}


@pytest.mark.parametrize("tier", list(AccessTier), ids=lambda t: t.name.lower())
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_it_enforces_the_tier_matrix(memory, operation, tier):
    minimum, call = OPERATIONS[operation]
    caller = creds(f"agent_{tier.name.lower()}", tier)
    if tier >= minimum:
        call(memory, caller)
    else:
        events_before = memory.client.xlen(memory.team("t1").events)
        with pytest.raises(AccessDeniedError):
            call(memory, caller)
        # Those set up state first (as a steward, or creating a session the caller may create).
        if operation not in ("promote_pattern", "reject_pattern", "resolve_conflict", "complete_task_of_other",
                             "complete_task", "fail_task", "extend_lease", "session_join_other"):
            assert memory.client.xlen(memory.team("t1").events) == events_before


def test_it_reports_capabilities_of_each_tier():
    table = {t: (creds("a", t).can_stage(), creds("a", t).can_validate()) for t in AccessTier}
    assert table == {AccessTier.OBSERVER: (False, False), AccessTier.CONTRIBUTOR: (True, False),
                     AccessTier.VALIDATOR: (True, True), AccessTier.STEWARD: (True, True)}

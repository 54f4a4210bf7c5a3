"""Review locks of staged patterns: one validator at a time, atomic in one Lua round trip, with events."""

import threading
import time

import pytest

from empathy_os import (
    AccessDeniedError,
    AccessTier,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ReviewLockedError,
    StagedPattern,
    get_review_locks,
    lock_pattern,
    unlock_pattern,
)

from tests.support import redis_calls, review_lock_holder, wait_until

from .helpers import creds

ALICE = creds("alice", AccessTier.VALIDATOR)
BOB = creds("bob", AccessTier.VALIDATOR)


@pytest.fixture
def staged(memory):
    for pattern_id in ("p1", "p2"):
        memory.stage_pattern(creds("perf"), StagedPattern(pattern_id, "perf", "optimization", "Eager loading",
                                                          code=f"{pattern_id}()"))
    return memory


def kinds(memory, after="0-0"):
    return [(e["kind"], e.get("pattern"), e.get("agent")) for e in memory.read_events("t1", after)
            if e["kind"].startswith("pattern.") and e["kind"] != "pattern.staged"]


def test_it_gives_the_lock_to_one_validator_in_one_round_trip(staged):
    unlock_pattern(staged, ALICE, "p1")  # the script is loaded into Redis on its first use
    with redis_calls(staged.client) as calls:
        lock = lock_pattern(staged, ALICE, "p1")
    assert calls == ["EVALSHA"]
    assert lock.holder == "alice" and lock.pattern_id == "p1"
    assert 100 < lock.expires_at - time.time() <= 120
    with pytest.raises(ReviewLockedError, match="p1 is being reviewed by alice") as refused:
        lock_pattern(staged, BOB, "p1")
    assert refused.value.lock.holder == "alice"
    assert isinstance(refused.value, ConflictError)
    assert review_lock_holder(staged, BOB, "p1") == "alice"
    assert lock_pattern(staged, BOB, "p2").holder == "bob"  # locks are per pattern


def test_it_emits_locked_and_unlocked_events_with_the_change(staged):
    lock_pattern(staged, ALICE, "p1")
    with pytest.raises(ReviewLockedError):
        lock_pattern(staged, BOB, "p1")  # refused: no event
    assert unlock_pattern(staged, BOB, "p1") is False  # not the holder: no event
    assert unlock_pattern(staged, ALICE, "p1") is True
    assert kinds(staged) == [("pattern.locked", "p1", "alice"), ("pattern.unlocked", "p1", "alice")]
    events = staged.read_events("t1")
    assert all(e["team"] == "t1" and e["ts"].isdigit() for e in events)


def test_it_lets_only_the_holder_release(staged):
    lock_pattern(staged, ALICE, "p1")
    assert unlock_pattern(staged, BOB, "p1") is False
    assert review_lock_holder(staged, ALICE, "p1") == "alice"
    assert unlock_pattern(staged, ALICE, "p1") is True
    assert review_lock_holder(staged, ALICE, "p1") is None
    assert unlock_pattern(staged, ALICE, "p1") is False  # already released
    assert lock_pattern(staged, BOB, "p1").holder == "bob"


def test_it_renews_the_holders_lock(staged):
    lock_pattern(staged, ALICE, "p1", ttl=5)
    renewed = lock_pattern(staged, ALICE, "p1", ttl=60)
    assert renewed.holder == "alice" and renewed.expires_at - time.time() > 5
    assert staged.client.pttl(staged.team("t1").pattern_lock("p1")) > 5000
    assert [k for k, _, _ in kinds(staged)] == ["pattern.locked", "pattern.locked"]


def test_it_frees_the_lock_when_it_expires(staged):
    lock_pattern(staged, ALICE, "p1", ttl=0.05)
    wait_until(lambda: review_lock_holder(staged, BOB, "p1") is None)
    assert lock_pattern(staged, BOB, "p1").holder == "bob"
    with pytest.raises(ReviewLockedError):
        lock_pattern(staged, ALICE, "p1")


def test_it_refuses_to_lock_a_pattern_that_is_not_staged(staged):
    staged.promote_pattern(ALICE, "p1")
    with pytest.raises(ConflictError, match="already promoted by alice"):
        lock_pattern(staged, BOB, "p1")
    with pytest.raises(NotFoundError, match="no staged pattern nope"):
        lock_pattern(staged, BOB, "nope")
    assert get_review_locks(staged, BOB, ["p1", "nope"]) == {}


def test_it_needs_a_validator(staged):
    for tier in (AccessTier.OBSERVER, AccessTier.CONTRIBUTOR):
        with pytest.raises(AccessDeniedError):
            lock_pattern(staged, creds("someone", tier), "p1")
        with pytest.raises(AccessDeniedError):
            unlock_pattern(staged, creds("someone", tier), "p1")
    assert review_lock_holder(staged, ALICE, "p1") is None


@pytest.mark.parametrize("bad", [dict(pattern_id="a b"), dict(pattern_id="x:y"), dict(ttl=0), dict(ttl=-1),
                                 dict(ttl="60"), dict(ttl=float("nan"))])
def test_it_refuses_bad_input_before_writing(staged, bad):
    args = {"pattern_id": "p1", "ttl": 60, **bad}
    with pytest.raises(InvalidInputError):
        lock_pattern(staged, ALICE, args["pattern_id"], ttl=args["ttl"])
    assert kinds(staged) == []


def test_it_gives_the_lock_to_exactly_one_of_racing_validators(staged):
    winners, barrier = [], threading.Barrier(8)

    def take(name):
        barrier.wait()
        try:
            winners.append(lock_pattern(staged, creds(name, AccessTier.VALIDATOR), "p1").holder)
        except ReviewLockedError:
            pass

    threads = [threading.Thread(target=take, args=(f"v{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert review_lock_holder(staged, ALICE, "p1") == winners[0]


def test_it_refuses_a_decision_by_another_validator_in_the_decisions_own_round_trip(staged):
    lock_pattern(staged, ALICE, "p1")
    with pytest.raises(NotFoundError):
        staged.promote_pattern(ALICE, "nope")  # the script is loaded into Redis on its first use
    refusing = pytest.raises(ReviewLockedError, match="p1 is being reviewed by alice")
    with redis_calls(staged.client) as calls, refusing as refused:
        staged.promote_pattern(BOB, "p1")
    assert calls == ["EVALSHA"]
    assert refused.value.lock.holder == "alice" and refused.value.lock.expires_at > time.time()
    with pytest.raises(ReviewLockedError):
        staged.reject_pattern(BOB, "p1", "not now")
    assert sorted(p.pattern_id for p in staged.get_staged_patterns(BOB)) == ["p1", "p2"]  # nothing changed

    staged.promote_pattern(ALICE, "p1")  # the holder decides, and the decision releases the lock
    assert review_lock_holder(staged, BOB, "p1") is None
    assert kinds(staged)[-1] == ("pattern.promoted", "p1", "alice")
    staged.reject_pattern(BOB, "p2", "unlocked patterns: anyone")

"""Crashed and stalled agents: leases, the reaper and fencing keep every task exactly once.

The soak: 10,000 tasks, 8 worker processes on a private redis-server with a 1.5 s lease. Each time
another 25th of the tasks is finished, one of the 8 live workers (the nearest to a tenth of them) is
SIGKILLed while it holds a lease it has not started to complete, and a new worker takes its place; a reaper returns expired leases.
Some tasks are poison (their workers fail them with retry, so they fail for good after max attempts,
with the reason); some make their first holder stall past its lease and then try to complete
(fencing must refuse it). At the end the workers' own ledgers, written only after ``complete_task``
returned, are checked against Redis: none lost, none twice, counters exact.

The short tests after it pin the stalled-worker case down in one process, on each backend.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    Config,
    ConflictError,
    LeaseError,
    RedisShortTermMemory,
)
from empathy_os.coordinator import task_history
from tests.reliability import workers

TEAM = "soak"
TASKS = 10_000
WORKERS = 8
LEASE_SECONDS = 1.5
WORK_SECONDS = 0.008
MAX_ATTEMPTS = 3
POISON_EVERY = 200  # 50 poison tasks
STALL_EVERY = 500  # 20 tasks whose first holder stalls past its lease
KILLS = 24  # 3 per worker slot on average; one each time another 1/(KILLS + 1) of the tasks is finished
REAP_INTERVAL = 0.2
GIVE_UP_AFTER = 240  # a hang guard, not a performance assertion


def is_poison(i: int) -> bool:
    return i % POISON_EVERY == 3


def is_stall(i: int) -> bool:
    return i % STALL_EVERY == 7


def soak_tasks():
    for i in range(TASKS):
        context = {"poison": True} if is_poison(i) else {"stall": True} if is_stall(i) else {}
        yield AgentTask(f"t{i}", workers.TASK_TYPE, priority=i % 10, context=context)


@dataclass
class Kill:
    agent_id: str
    task_id: str
    at: float


@dataclass
class Soak:
    """The running soak: worker slots, kills, reaper passes."""

    url: str
    ctx: object
    ledgers: Path
    procs: list = field(default_factory=list)
    agents: list = field(default_factory=list)
    kills: list = field(default_factory=list)
    generation: int = 0
    reaped: int = 0

    def __post_init__(self):
        self.state = self.ctx.Array("i", WORKERS, lock=False)
        self.task = self.ctx.Array("i", WORKERS, lock=False)
        self.locks = [self.ctx.Lock() for _ in range(WORKERS)]
        self.stop = self.ctx.Event()
        self.procs = [None] * WORKERS
        self.agents = [None] * WORKERS

    def start_worker(self, slot: int) -> None:
        self.generation += 1
        agent_id = f"w{slot}-g{self.generation}"
        ledger = str(self.ledgers / f"{agent_id}.log")
        proc = self.ctx.Process(target=workers.soak_worker, daemon=True, args=(
            self.url, TEAM, agent_id, LEASE_SECONDS, WORK_SECONDS, ledger, slot,
            self.state, self.task, self.locks, self.stop))
        self.state[slot] = workers.IDLE
        proc.start()
        self.procs[slot], self.agents[slot] = proc, agent_id

    def kill_one_holder(self) -> bool:
        """SIGKILL a worker that holds a lease it has not started to complete; start a new one."""
        holding = [s for s in range(WORKERS) if self.state[s] == workers.HOLDING]
        if not holding:
            return False
        slot = random.choice(holding)
        with self.locks[slot]:
            if self.state[slot] != workers.HOLDING:
                return False
            self.procs[slot].kill()
            self.procs[slot].join()
            self.kills.append(Kill(self.agents[slot], f"t{self.task[slot]}", time.time()))
        self.start_worker(slot)
        return True

    def reaper(self, done: threading.Event) -> None:
        memory = RedisShortTermMemory(self.url, config=Config(task_lease_seconds=LEASE_SECONDS))
        coordinator = AgentCoordinator(memory, TEAM)
        while not done.wait(REAP_INTERVAL):
            self.reaped += coordinator.reap_expired_leases()
        memory.client.close()

    def stop_all(self) -> None:
        self.stop.set()
        for proc in self.procs:
            proc.join(30)
            if proc.exitcode is None:
                proc.kill()
                proc.join()


def run_soak(coordinator, soak: Soak) -> float:
    """Run until every task is finished (or the hang guard trips). Returns the wall time."""
    started = time.monotonic()
    for slot in range(WORKERS):
        soak.start_worker(slot)
    done = threading.Event()
    reaper = threading.Thread(target=soak.reaper, args=(done,))
    reaper.start()
    try:
        while time.monotonic() - started < GIVE_UP_AFTER:
            counts = coordinator.count_tasks()
            finished = counts["completed"] + counts["failed"]
            if finished == TASKS:
                break
            # Paced by progress, not by the clock: on a fast machine the tasks could all be done
            # before a clock-paced schedule had made its kills.
            if len(soak.kills) < KILLS and finished >= (len(soak.kills) + 1) * TASKS // (KILLS + 1):
                soak.kill_one_holder()
            time.sleep(0.02)
    finally:
        soak.stop_all()
        done.set()
        reaper.join()
    return time.monotonic() - started


def read_ledgers(directory: Path) -> dict[str, list[list[str]]]:
    lines = {"ack": [], "refused": [], "lapsed": []}
    for path in sorted(directory.glob("*.log")):
        for line in path.read_text().splitlines():
            kind, *rest = line.split()
            lines[kind].append(rest)
    return lines


def task_records(memory, team: str, task_ids) -> dict[str, tuple[dict, list[dict]]]:
    """Each task's hash and lease history, read in pipelined batches."""
    keys = memory.team(team)
    records = {}
    ids = list(task_ids)
    for start in range(0, len(ids), 1000):
        batch = ids[start:start + 1000]
        pipe = memory.client.pipeline(transaction=False)
        for task_id in batch:
            pipe.hgetall(keys.task(task_id)).lrange(keys.task_log(task_id), 0, -1)
        out = pipe.execute()
        for i, task_id in enumerate(batch):
            history = [dict(e, at=round(e["at"] * 1000)) for e in task_history(out[2 * i], out[2 * i + 1])]
            records[task_id] = (out[2 * i], history)  # "at" in ms, as stored
    return records


def events(history, kind):
    return [e for e in history if e["event"] == kind]


@pytest.mark.soak
def test_it_keeps_every_task_exactly_once_while_workers_are_killed_and_stall(redis_url, worker_context, tmp_path):
    memory = RedisShortTermMemory(redis_url, config=Config(task_lease_seconds=LEASE_SECONDS,
                                                          task_max_attempts=MAX_ATTEMPTS))
    coordinator = AgentCoordinator(memory, TEAM)
    tasks = list(soak_tasks())
    for start in range(0, TASKS, 500):
        assert all(coordinator.add_tasks(tasks[start:start + 500]))
    soak = Soak(redis_url, worker_context, tmp_path)
    duration = run_soak(coordinator, soak)

    ledger = read_ledgers(tmp_path)
    records = task_records(memory, TEAM, (t.task_id for t in tasks))
    acked = Counter(task_id for task_id, _agent in ledger["ack"])
    status = {task_id: h.get("status") for task_id, (h, _log) in records.items()}
    completed = {t for t, s in status.items() if s == "completed"}
    failed = {t for t, s in status.items() if s == "failed"}
    lost = sorted(t for t, s in status.items() if s not in ("completed", "failed"))
    duplicates = sorted({t for t, n in acked.items() if n > 1}
                        | {t for t, (_h, log) in records.items() if len(events(log, "completed")) > 1})
    refused = [task_id for task_id, _exc, _agent in ledger["refused"]]
    stall_ids = {t.task_id for t in tasks if t.context.get("stall")}
    poison_ids = {t.task_id for t in tasks if t.context.get("poison")}
    figures = {
        "tasks": TASKS, "workers": WORKERS, "lease_seconds": LEASE_SECONDS, "kills": len(soak.kills),
        "worker_processes": soak.generation, "lost": len(lost), "duplicates": len(duplicates),
        "completed": len(completed), "failed": len(failed), "failed_poison": len(failed & poison_ids),
        "stalls": len(stall_ids), "stale_completions_refused": len(refused),
        "refused_by": dict(Counter(exc for _t, exc, _a in ledger["refused"])), "lapsed": len(ledger["lapsed"]),
        "reaper_handled": soak.reaped, "duration_s": round(duration, 1),
        "tasks_per_s": round(TASKS / duration),
        **recovery_times(soak.kills, records),
    }
    print("\ncrashed-agents soak:", json.dumps(figures))

    assert lost == [] and duplicates == []
    assert len(soak.kills) == KILLS
    # Every completion in Redis was acknowledged to exactly one worker, and to the holder Redis credits.
    assert set(acked) == completed
    assert all(records[t][0]["holder"] == agent for t, agent in ledger["ack"])
    # Failed tasks: the poison ones, after max attempts, with their reason (and any task whose
    # holders all died, with the lease expiry as the reason).
    assert poison_ids <= failed
    for task_id in failed:
        h, log = records[task_id]
        assert int(h["attempts"]) == MAX_ATTEMPTS
        expired = "lease expired (holder "
        why = (expired, "poison input: cannot parse") if task_id in poison_ids else expired
        assert h["reason"].startswith(why)
        assert h["reason"].endswith(f"(gave up after {MAX_ATTEMPTS} of {MAX_ATTEMPTS} attempts)")
        assert len(events(log, "failed")) == 1 and events(log, "completed") == [], (task_id, h, log)
    # Each kill really was of a lease holder: its claim ran out and the task went back to the queue.
    for kill in soak.kills:
        log = records[kill.task_id][1]
        claims = [i for i, e in enumerate(log) if e["event"] == "claimed" and e["agent"] == kill.agent_id]
        assert claims and claims[-1] + 1 < len(log), log  # (a poison task may come back to the same worker)
        after = log[claims[-1] + 1]
        assert after["event"] in ("requeued", "failed")
        assert after["reason"].startswith(f"lease expired (holder {kill.agent_id})")
        assert kill.task_id in completed | failed
    # Stalled workers: every late completion refused; the task completed once, by a later claim.
    assert stall_ids <= completed | failed
    assert sorted(refused) == sorted(stall_ids)
    refusers = {task_id: agent for task_id, _exc, agent in ledger["refused"]}
    assert all(exc in ("LeaseError", "ConflictError") for _t, exc, _a in ledger["refused"])
    for task_id in stall_ids & completed:  # (the others failed: their later holders were killed too)
        log = records[task_id][1]
        first = events(log, "claimed")[0]
        assert (first["agent"], first["attempt"]) == (refusers[task_id], 1)
        assert [e["attempt"] for e in events(log, "completed")] == [int(records[task_id][0]["attempts"])]
        assert events(log, "completed")[0]["attempt"] > 1
    # Counters updated in the same step as each completion: exact.
    totals = coordinator.aggregate_results()
    assert totals["total_completed"] == len(completed)
    assert totals["by_agent"] == dict(sorted(Counter(agent for _t, agent in ledger["ack"]).items()))
    assert totals["by_type"] == {workers.TASK_TYPE: len(completed)}
    assert totals["total_failed"] == len(failed)
    assert totals["failed_by_type"] == ({workers.TASK_TYPE: len(failed)} if failed else {})
    assert coordinator.count_tasks() == {"pending": 0, "in_progress": 0, "completed": len(completed),
                                         "failed": len(failed)}
    memory.client.close()


def recovery_times(kills, records) -> dict:
    """Seconds from each kill to its task's return to the queue, from the lease's expiry to that return
    (the reaper's delay) and from the kill to the task's completion by another worker."""
    to_requeue, expiry_to_requeue, to_done = [], [], []
    for kill in kills:
        log = records[kill.task_id][1]
        held = [i for i, e in enumerate(log) if e["event"] == "claimed" and e["agent"] == kill.agent_id]
        i = held[-1] if held else None
        if i is None or i + 1 == len(log):
            continue
        to_requeue.append(log[i + 1]["at"] / 1000 - kill.at)
        expiry_to_requeue.append((log[i + 1]["at"] - log[i]["at"]) / 1000 - LEASE_SECONDS)
        done = events(log[i + 1:], "completed")
        if done:
            to_done.append(done[0]["at"] / 1000 - kill.at)
    return {"kill_to_requeue_s": _spread(to_requeue), "lease_expiry_to_requeue_s": _spread(expiry_to_requeue),
            "kill_to_completed_s": _spread(to_done)}


def _spread(values) -> dict:
    if not values:
        return {}
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}


# -- stalled workers, one process ------------------------------------------------------------------------


def _agent(memory, agent_id, team="stall"):
    coordinator = AgentCoordinator(memory, team, AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, team))
    coordinator.register_agent(agent_id, ["job"])
    return coordinator


def _past_lease(memory, team="stall"):
    """Wait until the lease (0.2 s) is over, then run the reaper: the task is back in the queue."""
    time.sleep(0.3)
    return AgentCoordinator(memory, team).reap_expired_leases()


def test_it_refuses_a_stalled_worker_whose_task_was_reclaimed(memory_factory):
    memory = memory_factory(config=Config(task_lease_seconds=0.2))
    steward = AgentCoordinator(memory, "stall")
    steward.add_task(AgentTask("job1", "job"))
    slow, fast = _agent(memory, "slow"), _agent(memory, "fast")
    stale = slow.claim_task("slow")
    assert _past_lease(memory) == 1
    fresh = fast.claim_task("fast", lease_seconds=30)
    assert fresh.task_id == "job1" and fresh.attempts == 2
    with pytest.raises(LeaseError, match="held by fast, not by slow"):
        slow.complete_task("job1", {"late": True}, agent_id="slow", lease_token=stale.lease_token)
    with pytest.raises(LeaseError):
        slow.extend_lease("job1", agent_id="slow", lease_token=stale.lease_token)
    with pytest.raises(LeaseError):
        slow.fail_task("job1", "gave up", agent_id="slow", lease_token=stale.lease_token)
    assert slow.heartbeat("slow") == 0
    assert fast.complete_task("job1", {"ok": 1}, agent_id="fast", lease_token=fresh.lease_token) == "fast"
    with pytest.raises(ConflictError, match="already completed"):
        slow.complete_task("job1", {"late": True}, agent_id="slow", lease_token=stale.lease_token)
    task = steward.get_task("job1")
    assert task.status == "completed" and task.assigned_to == "fast" and task.result == {"ok": 1}
    assert [e["event"] for e in steward.get_task_history("job1")] == [
        "added", "claimed", "requeued", "claimed", "completed"]
    assert steward.aggregate_results()["by_agent"] == {"fast": 1}


def test_it_refuses_a_stale_token_when_the_same_agent_reclaimed_the_task(memory_factory):
    memory = memory_factory(config=Config(task_lease_seconds=0.2))
    AgentCoordinator(memory, "stall").add_task(AgentTask("job1", "job"))
    agent = _agent(memory, "a1")
    first = agent.claim_task("a1")
    _past_lease(memory)
    second = agent.claim_task("a1", lease_seconds=30)
    with pytest.raises(LeaseError, match="stale"):
        agent.complete_task("job1", {"from": "first"}, agent_id="a1", lease_token=first.lease_token)
    agent.complete_task("job1", {"from": "second"}, agent_id="a1", lease_token=second.lease_token)
    assert agent.get_task("job1").result == {"from": "second"}
    assert agent.aggregate_results()["total_completed"] == 1


def test_it_refuses_an_expired_lease_before_anyone_reaps_it(memory_factory):
    memory = memory_factory(config=Config(task_lease_seconds=0.2))
    steward = AgentCoordinator(memory, "stall")
    steward.add_task(AgentTask("job1", "job"))
    agent = _agent(memory, "a1")
    claimed = agent.claim_task("a1")
    time.sleep(0.3)
    with pytest.raises(LeaseError, match="expired"):
        agent.complete_task("job1", agent_id="a1", lease_token=claimed.lease_token)
    with pytest.raises(LeaseError, match="expired"):
        agent.extend_lease("job1", agent_id="a1", lease_token=claimed.lease_token)
    assert steward.count_tasks()["completed"] == 0
    assert steward.reap_expired_leases() == 1
    assert steward.get_task("job1").status == "pending"

"""Worker processes of the crashed-agents soak (importable, so ``forkserver`` can preload them).

A worker claims tasks, "works" a few milliseconds, completes them and appends every completion it
was acknowledged for to its own ledger file, only after ``complete_task`` returned: the ledger is
the agents' own account, checked against Redis at the end. Lines are written with one ``os.write``
on an ``O_APPEND`` descriptor, so a SIGKILL leaves whole lines only.

Each worker shares a small slot with the test (``multiprocessing`` arrays), so the test can SIGKILL
it exactly while it holds a lease it has not started to complete:

* ``state[slot]``: IDLE, HOLDING (claimed, working), COMPLETING, STALLING;
* ``task[slot]``: number of the task held;
* ``locks[slot]``: taken by the worker to move HOLDING -> COMPLETING and by the killer to check
  HOLDING and kill, so a kill never lands between "decided to complete" and the ledger line.
"""

from __future__ import annotations

import os
import time

from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    Config,
    ConflictError,
    LeaseError,
    RedisShortTermMemory,
)

IDLE, HOLDING, COMPLETING, STALLING = 0, 1, 2, 3
TASK_TYPE = "soak"


def task_number(task_id: str) -> int:
    return int(task_id[1:])


class Ledger:
    """Append-only lines of one worker: ``ack <task> <agent>``, ``refused <task> <exception> <agent>`` (a stalled
    completion fenced off), ``lapsed <task> <exception>`` (a worker starved past its lease)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, *words: str) -> None:
        os.write(self.fd, (" ".join(words) + "\n").encode())


def soak_worker(url: str, team: str, agent_id: str, lease_seconds: float, work_seconds: float,
                ledger_path: str, slot: int, state, task, locks, stop) -> None:
    """Claim and complete until ``stop`` is set. Tasks marked ``poison`` are failed with retry (they fail
    for good after max attempts); tasks marked ``stall`` make their first holder sleep past its lease and
    then try to complete (fencing must refuse it)."""
    memory = RedisShortTermMemory(url, config=Config(task_lease_seconds=lease_seconds))
    coordinator = AgentCoordinator(memory, team, AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, team))
    coordinator.register_agent(agent_id, [TASK_TYPE])
    ledger = Ledger(ledger_path)
    lock = locks[slot]
    while not stop.is_set():
        claimed = coordinator.claim_task(agent_id)
        if claimed is None:
            time.sleep(0.02)
            continue
        task[slot] = task_number(claimed.task_id)
        if claimed.context.get("stall") and claimed.attempts == 1:
            state[slot] = STALLING
            stall(coordinator, claimed, agent_id, lease_seconds, ledger)
            state[slot] = IDLE
            continue
        state[slot] = HOLDING
        # The holder after a stall works longer (within its lease), so the stalled worker wakes while
        # the task is held by someone else.
        time.sleep(lease_seconds * 0.6 if claimed.context.get("stall") else work_seconds)
        with lock:  # the killer kills only in HOLDING, while it holds this lock
            state[slot] = COMPLETING
        try:
            finish(coordinator, claimed, agent_id, ledger)
        except LeaseError as exc:  # starved past the lease: refused, the task went back to the queue
            ledger.write("lapsed", claimed.task_id, type(exc).__name__)
        state[slot] = IDLE
    memory.client.close()


def finish(coordinator, claimed, agent_id: str, ledger: Ledger) -> None:
    """Complete the task (and record the acknowledgement), or fail a poison task with retry."""
    if claimed.context.get("poison"):
        coordinator.fail_task(claimed.task_id, "poison input: cannot parse", agent_id=agent_id, retry=True,
                              lease_token=claimed.lease_token)
        return
    coordinator.complete_task(claimed.task_id, {"by": agent_id}, agent_id=agent_id, lease_token=claimed.lease_token)
    ledger.write("ack", claimed.task_id, agent_id)


def stall(coordinator, claimed, agent_id: str, lease_seconds: float, ledger: Ledger) -> None:
    """Sleep well past the lease (the reaper hands the task to someone else), then try to complete."""
    time.sleep(lease_seconds * 1.5)
    try:
        coordinator.complete_task(claimed.task_id, {"by": agent_id, "stale": True}, agent_id=agent_id,
                                  lease_token=claimed.lease_token)
    except (LeaseError, ConflictError) as exc:
        ledger.write("refused", claimed.task_id, type(exc).__name__, agent_id)
        return
    ledger.write("ack", claimed.task_id, agent_id)  # fencing failed: the checks find the duplicate

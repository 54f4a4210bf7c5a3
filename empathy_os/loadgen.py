"""Library worker processes for load runs (``manage.py bench --load``): importable, so ``spawn`` can start them.

Each worker registers, waits for the common start signal, then claims and completes tasks one at a
time until none is pending or held, and reports what it completed and how long each claim took.
"""

from __future__ import annotations

import time

from .coordinator import AgentCoordinator
from .redis_memory import RedisShortTermMemory
from .tiers import AccessTier, AgentCredentials


def library_worker(url: str, team: str, agent_id: str, task_type: str, ready, go, results) -> None:
    """Run in a process: put ``(agent_id, completed ids, claim latencies in ns, error or None)`` on ``results``."""
    done, claims = [], []
    try:
        memory = RedisShortTermMemory(url)
        coordinator = AgentCoordinator(memory, team, AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, team))
        coordinator.register_agent(agent_id, [task_type])
        ready.put(agent_id)
        go.wait()
        while True:
            t0 = time.perf_counter_ns()
            task = coordinator.claim_task(agent_id, task_type)
            claims.append(time.perf_counter_ns() - t0)
            if task is None:
                counts = coordinator.count_tasks()
                if counts["pending"] == 0 and counts["in_progress"] == 0:
                    break
                time.sleep(0.002)  # tasks held by others may come back (an expired lease)
                continue
            coordinator.complete_task(task.task_id, {"by": agent_id}, agent_id, lease_token=task.lease_token)
            done.append(task.task_id)
        memory.client.close()
        results.put((agent_id, done, claims, None))
    except Exception as exc:  # reported, so the run fails with the reason instead of hanging
        results.put((agent_id, done, claims, f"{type(exc).__name__}: {exc}"))

"""Worker processes for the multi-process tests (importable, so ``spawn`` can start them)."""

from __future__ import annotations

from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, RedisShortTermMemory


def claim_and_complete(url: str, team: str, agent_id: str, task_type: str) -> list[str]:
    """Claim and complete tasks until none is left; return the ids this worker completed."""
    memory = RedisShortTermMemory(url)
    coordinator = AgentCoordinator(memory, team, AgentCredentials(agent_id, AccessTier.CONTRIBUTOR, team))
    coordinator.register_agent(agent_id, [task_type])
    done = []
    while True:
        task = coordinator.claim_task(agent_id)
        if task is None:
            if coordinator.count_tasks()["pending"] == 0:
                break
            continue
        coordinator.complete_task(task.task_id, {"by": agent_id}, agent_id=agent_id, lease_token=task.lease_token)
        done.append(task.task_id)
    memory.client.close()
    return done

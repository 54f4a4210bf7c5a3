"""Eight processes race over thousands of tasks on a real Redis and on a Redis Cluster of three
masters: each task is completed exactly once."""

import multiprocessing
from collections import Counter

import pytest

from empathy_os import AgentCoordinator, AgentTask, RedisShortTermMemory
from tests.workers import claim_and_complete

TASKS = 4000
WORKERS = 8


@pytest.fixture(params=["redis", "cluster"])
def server_url(request):
    """A flushed private redis-server, or the session's flushed Redis Cluster (``redis+cluster://``)."""
    return request.getfixturevalue("cluster_url" if request.param == "cluster" else "redis_url")


def test_it_completes_every_task_exactly_once_across_processes(server_url):
    memory = RedisShortTermMemory(server_url)
    coordinator = AgentCoordinator(memory, "mp")
    for start in range(0, TASKS, 500):
        coordinator.add_tasks(AgentTask(f"t{i}", "work", priority=i % 10) for i in range(start, start + 500))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(claim_and_complete, [(server_url, "mp", f"w{i}", "work") for i in range(WORKERS)])
    completed = [task_id for ids in results for task_id in ids]
    duplicates = [task_id for task_id, n in Counter(completed).items() if n > 1]
    assert duplicates == []
    assert set(completed) == {f"t{i}" for i in range(TASKS)}
    totals = coordinator.aggregate_results()
    assert totals["total_completed"] == TASKS
    assert totals["by_agent"] == {f"w{i}": len(ids) for i, ids in enumerate(results) if ids}
    assert totals["by_type"] == {"work": TASKS}
    assert coordinator.count_tasks() == {"pending": 0, "in_progress": 0, "completed": TASKS, "failed": 0}
    assert sum(1 for ids in results if ids) > 1  # the work really was shared
    memory.client.close()

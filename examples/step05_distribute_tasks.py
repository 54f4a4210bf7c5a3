"""Part 2, Step 5: put the team's tasks on the queue.

Run: EMPATHY_REDIS_MOCK=1 python step05_distribute_tasks.py  (mock mode), or REDIS_URL=redis://... python step05_distribute_tasks.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step04_set_up_team import AgentTask, coordinator  # noqa: E402

# --- chapter block begins ---
# Add tasks to the queue
tasks = [
    AgentTask(
        task_id="sec_001",
        task_type="security_review",
        description="Review authentication module for vulnerabilities",
        priority=9  # High priority
    ),
    AgentTask(
        task_id="perf_001",
        task_type="performance_review",
        description="Profile database query performance",
        priority=7
    ),
    AgentTask(
        task_id="style_001",
        task_type="style_review",
        description="Check code style compliance",
        priority=5  # Lower priority
    ),
]

for task in tasks:
    coordinator.add_task(task)
    print(f"Added task: {task.task_id} (priority {task.priority})")
# --- chapter block ends ---

"""Part 1, Step 3: stash and retrieve working data.

Run: EMPATHY_REDIS_MOCK=1 python step03_basic_operations.py  (mock mode), or REDIS_URL=redis://... python step03_basic_operations.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step02_create_agent import agent  # noqa: E402

# --- chapter block begins ---
# Store working data (expires in 1 hour by default)
agent.stash("current_task", {
    "type": "code_review",
    "files": ["auth.py", "api.py"],
    "started_at": "2024-12-10T10:00:00"
})

# Retrieve data
task = agent.retrieve("current_task")
print(f"Working on: {task['type']} for {len(task['files'])} files")

# Check another agent's data
other_data = agent.retrieve("analysis_results", agent_id="security_agent")
# --- chapter block ends ---

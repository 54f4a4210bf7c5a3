"""Part 2, Step 4: set up a team of agents.

Run: EMPATHY_REDIS_MOCK=1 python step04_set_up_team.py  (mock mode), or REDIS_URL=redis://... python step04_set_up_team.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step01_get_memory import memory  # noqa: E402

# --- chapter block begins ---
from empathy_os import AgentCoordinator, AgentTask

# Create coordinator (automatically gets Steward access)
coordinator = AgentCoordinator(memory, team_id="review_team")

# Register specialized agents
coordinator.register_agent("security_agent", capabilities=["security_review"])
coordinator.register_agent("performance_agent", capabilities=["performance_review"])
coordinator.register_agent("style_agent", capabilities=["style_review"])

print(f"Active agents: {coordinator.get_active_agents()}")
# --- chapter block ends ---

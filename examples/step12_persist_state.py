"""Part 5, Step 12: persist collaboration state and restore it in a new agent.

Run: EMPATHY_REDIS_MOCK=1 python step12_persist_state.py  (mock mode), or REDIS_URL=redis://... python step12_persist_state.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step02_create_agent import AccessTier, EmpathyOS, memory  # noqa: E402

# --- chapter block begins ---
# Agent accumulates state during work
agent = EmpathyOS(
    user_id="long_running_agent",
    short_term_memory=memory,
    access_tier=AccessTier.CONTRIBUTOR
)

# Update collaboration state through interactions
agent.collaboration_state.trust_level = 0.85
agent.collaboration_state.successful_interventions = 15
agent.collaboration_state.failed_interventions = 2
agent.current_empathy_level = 4

# Persist to Redis (survives process restart)
agent.persist_collaboration_state()
print(f"State persisted for session: {agent.session_id}")

# Later, or in a new process...
new_agent = EmpathyOS(
    user_id="long_running_agent",
    short_term_memory=memory,
    access_tier=AccessTier.CONTRIBUTOR
)

# Restore state from previous session
restored = new_agent.restore_collaboration_state(session_id=agent.session_id)
if restored:
    print(f"Trust level restored: {new_agent.collaboration_state.trust_level}")
    print(f"Empathy level: {new_agent.current_empathy_level}")
# --- chapter block ends ---

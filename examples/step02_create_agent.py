"""Part 1, Step 2: create an agent with memory.

Run: EMPATHY_REDIS_MOCK=1 python step02_create_agent.py  (mock mode), or REDIS_URL=redis://... python step02_create_agent.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step01_get_memory import memory  # noqa: E402

# --- chapter block begins ---
from empathy_os import EmpathyOS, AccessTier

# Create agent with short-term memory
agent = EmpathyOS(
    user_id="code_reviewer",
    short_term_memory=memory,
    access_tier=AccessTier.CONTRIBUTOR,  # Can read and write
    target_level=4,  # Anticipatory
)

# Verify memory is available
print(f"Has memory: {agent.has_short_term_memory()}")
print(f"Session ID: {agent.session_id}")
# --- chapter block ends ---

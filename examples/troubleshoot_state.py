"""Troubleshooting, State Not Persisting: restore with the same session id.

Run: EMPATHY_REDIS_MOCK=1 python troubleshoot_state.py  (mock mode), or REDIS_URL=redis://... python troubleshoot_state.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step12_persist_state import agent, new_agent  # noqa: E402

# --- chapter block begins ---
# Verify session ID matches
print(f"Original session: {agent.session_id}")
# Use same session_id when restoring
new_agent.restore_collaboration_state(session_id=agent.session_id)
# --- chapter block ends ---

"""Troubleshooting, Permission Errors: check an agent's access tier.

Run: EMPATHY_REDIS_MOCK=1 python troubleshoot_permissions.py  (mock mode), or REDIS_URL=redis://... python troubleshoot_permissions.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step02_create_agent import agent  # noqa: E402

# --- chapter block begins ---
# Check agent's access tier
print(f"Tier: {agent.credentials.tier}")
print(f"Can write: {agent.credentials.can_stage()}")
print(f"Can validate: {agent.credentials.can_validate()}")
# --- chapter block ends ---

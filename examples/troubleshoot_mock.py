"""Troubleshooting, Redis Connection Issues: force mock mode.

Run: EMPATHY_REDIS_MOCK=1 python troubleshoot_mock.py  (mock mode), or REDIS_URL=redis://... python troubleshoot_mock.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# --- chapter block begins ---
# Force mock mode for testing
from empathy_os.redis_memory import RedisShortTermMemory
memory = RedisShortTermMemory(use_mock=True)
# --- chapter block ends ---

# Not in the chapter (the block prints nothing): show that mock mode was forced, even with REDIS_URL set.
print(f"Mode: {memory.get_stats()['mode']}, answers: {memory.ping()}")

"""Part 1, Step 1: get Redis memory (REDIS_URL, then localhost:6379, then mock mode).

Run: EMPATHY_REDIS_MOCK=1 python step01_get_memory.py  (mock mode), or REDIS_URL=redis://... python step01_get_memory.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# --- chapter block begins ---
from empathy_os import get_redis_memory, check_redis_connection

# Automatic detection:
# 1. Checks REDIS_URL environment variable
# 2. Falls back to localhost:6379
# 3. Falls back to mock mode (in-memory)
memory = get_redis_memory()

# Verify connection
if check_redis_connection():
    print("Connected to Redis")
    stats = memory.get_stats()
    print(f"Mode: {stats['mode']}, Keys: {stats['keys']}")
else:
    print("Using mock mode (no Redis)")
# --- chapter block ends ---

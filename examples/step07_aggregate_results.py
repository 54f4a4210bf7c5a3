"""Part 2, Step 7: aggregate the team's results.

Run: EMPATHY_REDIS_MOCK=1 python step07_aggregate_results.py  (mock mode), or REDIS_URL=redis://... python step07_aggregate_results.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step06_claim_and_complete import coordinator  # noqa: E402

# --- chapter block begins ---
# After all agents complete...
results = coordinator.aggregate_results()

print(f"Total completed: {results['total_completed']}")
print(f"By agent: {results['by_agent']}")
print(f"By type: {results['by_type']}")
# --- chapter block ends ---

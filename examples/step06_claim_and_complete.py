"""Part 2, Step 6: an agent claims its task and completes it.

Run: EMPATHY_REDIS_MOCK=1 python step06_claim_and_complete.py  (mock mode), or REDIS_URL=redis://... python step06_claim_and_complete.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step05_distribute_tasks import coordinator  # noqa: E402

# --- chapter block begins ---
# Security agent claims its task
claimed = coordinator.claim_task("security_agent", "security_review")
if claimed:
    print(f"Security agent claimed: {claimed.task_id}")

    # Do the work...
    findings = {
        "vulnerabilities": 0,
        "warnings": 2,
        "files_reviewed": 5,
        "time_taken_ms": 1234
    }

    # Mark complete with results
    coordinator.complete_task(claimed.task_id, findings)
    print(f"Task completed with {findings['warnings']} warnings")
# --- chapter block ends ---

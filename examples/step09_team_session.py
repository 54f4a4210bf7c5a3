"""Part 3, Step 9: a team session with shared context.

Run: EMPATHY_REDIS_MOCK=1 python step09_team_session.py  (mock mode), or REDIS_URL=redis://... python step09_team_session.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step01_get_memory import memory  # noqa: E402

# --- chapter block begins ---
from empathy_os import TeamSession

# Create collaborative session
session = TeamSession(
    memory,
    session_id="pr_review_42",
    purpose="Review PR #42: Authentication Refactor"
)

# Add participants
session.add_agent("security_agent")
session.add_agent("performance_agent")
session.add_agent("lead_reviewer")

# Share context (visible to all participants)
session.share("pr_context", {
    "pr_number": 42,
    "author": "developer_123",
    "files_changed": ["auth.py", "api.py", "tests/test_auth.py"],
    "lines_added": 450,
    "lines_removed": 120
})

# Any agent can read shared context
context = session.get("pr_context")
print(f"Reviewing PR #{context['pr_number']} by {context['author']}")

# Session info
info = session.get_info()
print(f"Participants: {info.get('participants', [])}")
# --- chapter block ends ---

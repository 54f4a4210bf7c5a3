"""Part 4, Step 10: a contributor stages a pattern it discovered.

Run: EMPATHY_REDIS_MOCK=1 python step10_stage_pattern.py  (mock mode), or REDIS_URL=redis://... python step10_stage_pattern.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step02_create_agent import AccessTier, EmpathyOS, memory  # noqa: E402

# --- chapter block begins ---
from empathy_os import StagedPattern

# Contributor discovers a useful pattern during work
pattern = StagedPattern(
    pattern_id="pat_eager_load_001",
    agent_id="performance_agent",
    pattern_type="optimization",
    name="Eager Loading for N+1 Queries",
    description="Replace lazy loading with eager loading when iterating over related objects",
    confidence=0.88,
    code="""
# Before (N+1 problem):
for user in users:
    print(user.profile.name)  # Queries DB for each user

# After (eager loading):
users = User.objects.select_related('profile').all()
for user in users:
    print(user.profile.name)  # No additional queries
""",
    context={
        "discovered_in": "pr_review_42",
        "files": ["api.py"],
        "performance_improvement": "10x fewer queries"
    }
)

# Stage the pattern (requires Contributor+ access)
contributor = EmpathyOS(
    user_id="performance_agent",
    short_term_memory=memory,
    access_tier=AccessTier.CONTRIBUTOR
)
contributor.stage_pattern(pattern)
print(f"Pattern staged: {pattern.name}")
# --- chapter block ends ---

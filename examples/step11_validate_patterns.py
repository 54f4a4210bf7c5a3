"""Part 4, Step 11: a validator reviews the staged patterns.

Run: EMPATHY_REDIS_MOCK=1 python step11_validate_patterns.py  (mock mode), or REDIS_URL=redis://... python step11_validate_patterns.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step10_stage_pattern import AccessTier, EmpathyOS, memory  # noqa: E402

# --- chapter block begins ---
# Validator reviews staged patterns
validator = EmpathyOS(
    user_id="senior_architect",
    short_term_memory=memory,
    access_tier=AccessTier.VALIDATOR  # Can promote patterns
)

staged = validator.get_staged_patterns()
print(f"Patterns awaiting validation: {len(staged)}")

for p in staged:
    print(f"\n--- {p.name} ---")
    print(f"Type: {p.pattern_type}")
    print(f"Confidence: {p.confidence:.0%}")
    print(f"Discovered by: {p.agent_id}")
    print(f"Code example:\n{p.code}")

    # Validator decision (in real system, would involve review)
    if p.confidence > 0.85:
        print(f"APPROVED: Promoting to pattern library")
        # promote_to_library(p)  # Your promotion logic
    else:
        print(f"NEEDS WORK: Confidence below threshold")
# --- chapter block ends ---

"""Part 3, Step 8: send a signal to the lead, who receives it.

Run: EMPATHY_REDIS_MOCK=1 python step08_signals.py  (mock mode), or REDIS_URL=redis://... python step08_signals.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# Continue the chapter where the earlier step left off (importing it runs it).
from step02_create_agent import AccessTier, EmpathyOS, agent, memory  # noqa: E402

# --- chapter block begins ---
# Agent sends completion signal
agent.send_signal(
    signal_type="analysis_complete",
    data={
        "agent": "security_agent",
        "findings": {"critical": 0, "warnings": 2},
        "confidence": 0.92
    },
    target_agent="lead_reviewer"  # Or None for broadcast
)

# Lead receives signals
lead = EmpathyOS(
    user_id="lead_reviewer",
    short_term_memory=memory,
    access_tier=AccessTier.VALIDATOR
)

signals = lead.receive_signals("analysis_complete")
for sig in signals:
    print(f"From {sig.get('sender')}: {sig.get('data')}")
# --- chapter block ends ---

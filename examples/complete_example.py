"""The chapter's Complete Working Example: a multi-agent code review.

Run: EMPATHY_REDIS_MOCK=1 python complete_example.py  (mock mode), or REDIS_URL=redis://... python complete_example.py
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

# --- chapter block begins ---
"""
Complete multi-agent code review with short-term memory.
Run this file to see all concepts in action.
"""
import asyncio
from empathy_os import (
    EmpathyOS, get_redis_memory, AccessTier,
    AgentCoordinator, AgentTask, TeamSession, StagedPattern
)

async def run_code_review():
    # Setup
    memory = get_redis_memory()
    print(f"Memory mode: {memory.get_stats()['mode']}")

    # Create team
    coordinator = AgentCoordinator(memory, team_id="code_review")
    coordinator.register_agent("security", ["security_review"])
    coordinator.register_agent("performance", ["performance_review"])

    # Create session
    session = TeamSession(memory, session_id="pr_100", purpose="Review PR #100")
    session.add_agent("security")
    session.add_agent("performance")
    session.add_agent("lead")

    # Share context
    session.share("scope", {
        "files": ["api.py", "auth.py"],
        "lines_changed": 200
    })

    # Add tasks
    coordinator.add_task(AgentTask(
        task_id="sec_review",
        task_type="security_review",
        description="Check for vulnerabilities",
        priority=9
    ))

    # Create agents
    security_agent = EmpathyOS(
        "security",
        short_term_memory=memory,
        access_tier=AccessTier.CONTRIBUTOR
    )
    lead_agent = EmpathyOS(
        "lead",
        short_term_memory=memory,
        access_tier=AccessTier.VALIDATOR
    )

    # Security agent works
    security_agent.stash("findings", {
        "vulnerabilities": 0,
        "warnings": 1,
        "passed": True
    })
    security_agent.send_signal(
        "review_complete",
        {"agent": "security", "passed": True}
    )

    # Stage discovered pattern
    security_agent.stage_pattern(StagedPattern(
        pattern_id="pat_input_validation",
        agent_id="security",
        pattern_type="security",
        name="API Boundary Validation",
        description="Always validate input at API boundaries",
        confidence=0.90
    ))

    # Lead aggregates
    signals = lead_agent.receive_signals("review_complete")
    staged = lead_agent.get_staged_patterns()

    print(f"\nReview Complete!")
    print(f"Signals received: {len(signals)}")
    print(f"Patterns staged: {len(staged)}")
    print(f"Final keys in Redis: {memory.get_stats()['keys']}")

    # Persist state
    lead_agent.collaboration_state.successful_interventions += 1
    lead_agent.persist_collaboration_state()
    print(f"State persisted")

if __name__ == "__main__":
    asyncio.run(run_code_review())
# --- chapter block ends ---

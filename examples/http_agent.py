"""An agent working over the site's HTTP API with ``empathy_os.client``: it registers for its task
types (default security_review), then claims a task (sleeping on signals when idle), renews its
lease, completes the task with its result and tells the team; ``--once``: stop when none is pending.
    python manage.py create_agent_token reviewer_1 --team review_team --tier contributor
    EMPATHY_URL=http://127.0.0.1:8000 EMPATHY_TOKEN=emp_... python examples/http_agent.py [--once] [TYPE ...]"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # empathy_os from this checkout, uninstalled

from empathy_os import AgentCoordinator, EmpathyOS, LeaseError  # noqa: E402
from empathy_os.client import connect_from_env  # noqa: E402


def review(task) -> dict:  # the agent's actual work (here: pretend to review the files named in the context)
    files = task.context.get("files", [])
    return {"files_reviewed": len(files), "warnings": len(files) % 3}


def main(args: list[str]) -> int:
    me = (memory := connect_from_env()).identity  # who the token is: agent, team and tier are the site's
    agent = EmpathyOS(me.agent_id, memory, me.tier, team_id=me.team_id)
    team = AgentCoordinator(memory, me.team_id, agent.credentials)
    team.register_agent(me.agent_id, [a for a in args if a != "--once"] or ["security_review"])
    print(f"registered {me.agent_id} in {me.team_id}")
    while True:
        if (task := team.claim_task(me.agent_id)) is None:
            if "--once" in args:  # nothing pending: done
                return 0
            for sig in agent.receive_signals(wait=20):  # sleep until something happens
                print(f"signal {sig['signal_type']} from {sig['sender']}: {sig['data']}")
            continue
        try:
            team.extend_lease(task.task_id, me.agent_id, lease_token=task.lease_token)
            team.complete_task(task.task_id, result := review(task), me.agent_id, lease_token=task.lease_token)
        except LeaseError as exc:  # our lease lapsed and someone else holds the task now: drop it
            print(f"lost {task.task_id}: {exc}")
            continue
        agent.send_signal("review_complete", {"task": task.task_id, **result})
        print(f"completed {task.task_id}: {result}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""An agent that works over the HTTP API, with nothing but the standard library.

    python manage.py create_agent_token reviewer_1 --team review_team --tier contributor
    EMPATHY_TOKEN=emp_... python examples/http_agent.py [--url http://127.0.0.1:8000] [--once]

It registers its capabilities, then loops: claim a task (long-polling for signals when idle),
renew its lease while it works, complete the task with its result, and tell the team.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


class Api:
    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method: str, path: str, body=None, timeout: float = 40):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        while True:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    raw = response.read()
                    return response.status, (json.loads(raw) if raw else None)
            except urllib.error.HTTPError as exc:
                payload = json.loads(exc.read() or b"{}")
                if exc.code == 503:  # memory offline: wait as told, then retry
                    time.sleep(float(exc.headers.get("Retry-After", "1")))
                    continue
                return exc.code, payload


def review(task: dict) -> dict:
    """The agent's actual work (here: pretend to review the files named in the context)."""
    files = task["context"].get("files", [])
    return {"files_reviewed": len(files), "warnings": len(files) % 3}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("EMPATHY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--capability", action="append", default=None, help="task type (repeatable)")
    parser.add_argument("--once", action="store_true", help="stop when no task is pending")
    args = parser.parse_args(argv)
    token = os.environ.get("EMPATHY_TOKEN")
    if not token:
        print("set EMPATHY_TOKEN (python manage.py create_agent_token ...)", file=sys.stderr)
        return 2
    api = Api(args.url, token)
    status, me = api.call("POST", "/agents/register", {"capabilities": args.capability or ["security_review"]})
    if status != 200:
        print(f"cannot register: {status} {me}", file=sys.stderr)
        return 1
    print(f"registered {me['agent_id']} in {me['team_id']} for {me['capabilities']}")
    while True:
        status, task = api.call("POST", "/tasks/claim", {})
        if status == 204:
            if args.once:
                return 0
            _, signals = api.call("GET", "/signals?wait=20")  # sleep until something happens
            for sig in signals or []:
                print(f"signal {sig['signal_type']} from {sig['sender']}: {sig['data']}")
            continue
        if status != 200:
            print(f"claim failed: {status} {task}", file=sys.stderr)
            return 1
        print(f"claimed {task['task_id']} (lease until {time.ctime(task['lease_expires_at'])})")
        api.call("POST", f"/tasks/{task['task_id']}/heartbeat", {"lease_token": task["lease_token"]})
        result = review(task)
        status, body = api.call("POST", f"/tasks/{task['task_id']}/complete",
                                {"result": result, "lease_token": task["lease_token"]})
        if status == 409:  # our lease lapsed and someone else has it now: drop it
            print(f"lost {task['task_id']}: {body['detail']}")
            continue
        api.call("POST", "/signals", {"signal_type": "review_complete", "data": {"task": task["task_id"], **result}})
        print(f"completed {task['task_id']}: {result}")


if __name__ == "__main__":
    sys.exit(main())

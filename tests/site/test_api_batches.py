"""Batches over HTTP: /tasks (a list), /tasks/claim-batch, /tasks/complete-batch."""

import pytest

from tests.support import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def _add(api, token, n):
    tasks = [{"task_id": f"t{i}", "task_type": "review", "priority": i % 2} for i in range(n)]
    assert api.post("/tasks", tasks, token=token).status_code == 201


def test_it_claims_and_completes_a_batch(api, site_memory, agents):
    worker = agents["contributor"]
    _add(api, worker, 5)
    claimed = api.post("/tasks/claim-batch", {"task_type": "review", "n": 3}, token=worker)
    assert claimed.status_code == 200
    tasks = claimed.json()
    assert [t["task_id"] for t in tasks] == ["t1", "t3", "t0"]
    assert {(t["status"], t["assigned_to"]) for t in tasks} == {("in_progress", worker.agent_id)}
    completions = [{"task_id": t["task_id"], "result": {"n": i}, "lease_token": t["lease_token"]}
                   for i, t in enumerate(tasks)] + [{"task_id": "t4"}]
    done = api.post("/tasks/complete-batch", {"completions": completions}, token=worker)
    assert done.status_code == 200
    body = done.json()
    assert body["completed"] == 3
    assert [r["status"] for r in body["results"]] == ["completed"] * 3 + ["error"]
    assert body["results"][0]["credited"] == worker.agent_id
    assert body["results"][3]["error"] == "conflict" and "not claimed" in body["results"][3]["detail"]
    again = api.post("/tasks/complete-batch", {"completions": completions[:1]}, token=worker).json()
    assert again["completed"] == 0 and "already completed" in again["results"][0]["detail"]
    assert api.get("/results", token=worker).json()["total_completed"] == 3
    assert api.post("/tasks/claim-batch", {"task_type": "review", "n": 5}, token=worker).json() == [
        {**api.get("/tasks/t2", token=worker).json()}, {**api.get("/tasks/t4", token=worker).json()}]


def test_it_refuses_another_agents_completion_per_task(api, site_memory, agents, make_token):
    worker, other = agents["contributor"], make_token("contributor")
    _add(api, worker, 1)
    [task] = api.post("/tasks/claim-batch", {"task_type": "review", "n": 1}, token=worker).json()
    body = api.post("/tasks/complete-batch", {"completions": [{"task_id": task["task_id"]}]}, token=other).json()
    assert body["completed"] == 0 and body["results"][0]["error"] == "conflict"
    assert "held by" in body["results"][0]["detail"]


@pytest.mark.parametrize("path, body", [
    ("/tasks/claim-batch", {"n": 0}),
    ("/tasks/claim-batch", {"n": 1001}),
    ("/tasks/claim-batch", {"n": "many"}),
    ("/tasks/complete-batch", {"completions": []}),
    ("/tasks/complete-batch", {"completions": [{"task_id": "bad id!"}]}),
    ("/tasks/complete-batch", {"completions": [{"task_id": "t1"}, {"task_id": "t1"}]}),
])
def test_it_answers_400_to_a_bad_batch(api, site_memory, agents, path, body):
    assert_error(api.post(path, body, token=agents["contributor"]), 400, "invalid_input")


def test_it_needs_a_contributor_to_claim_a_batch(api, site_memory, agents):
    assert_error(api.post("/tasks/claim-batch", {"n": 2, "task_type": "review"}, token=agents["observer"]), 403)


def test_it_lists_the_batch_endpoints_in_the_schema(api, site_memory):
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/v1/tasks/claim-batch" in paths and "/api/v1/tasks/complete-batch" in paths

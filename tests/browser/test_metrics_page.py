"""The metrics page is live too: a team's counts and its coordination latency change without
reload (renders throttled to one a second). The probe's rounds, which run only under
``manage.py serve``, are pushed the same way (tests/consumers/test_metrics_consumer.py)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from empathy_os import AgentCoordinator, AgentTask

from .conftest import live, stayed_live

#: Columns of the teams table (see templates/coordination/partials/metrics_teams.html).
PENDING, IN_PROGRESS, COMPLETED, COORDINATION_P50 = 2, 3, 4, 9


def test_it_updates_a_teams_counts_and_coordination_latency_without_reload(open_page, memory, team):
    page = live(open_page("/metrics/dashboard/", user="otto"))
    row = page.locator(f"#metrics-team-{team}")
    expect(row).to_have_count(0)

    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    coordinator.add_tasks([AgentTask("t1", "review", "check the diff", priority=5),
                           AgentTask("t2", "review", "check the docs", priority=1)])
    expect(row.locator("td").nth(PENDING)).to_have_text("2")
    expect(row.locator("td").nth(COORDINATION_P50)).to_have_text("—")

    assert coordinator.claim_task("alpha", "review").task_id == "t1"
    expect(row.locator("td").nth(IN_PROGRESS)).to_have_text("1")
    expect(row.locator("td").nth(COORDINATION_P50)).to_have_text(re.compile(r"\d"))  # a latency sample

    coordinator.complete_task("t1", {"ok": True}, agent_id="alpha")
    expect(row.locator("td").nth(COMPLETED)).to_have_text("1")
    expect(row.locator("td").nth(IN_PROGRESS)).to_have_text("0")

    assert stayed_live(page)
    assert page.console_errors == []

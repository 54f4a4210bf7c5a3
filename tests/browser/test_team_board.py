"""Team leads watch the board: tasks claimed and completed by agents move across the columns of
every open dashboard without reload."""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer
from playwright.sync_api import expect

from coordination.dashboard import COLUMN_LIMITS
from empathy_os import AgentCoordinator, AgentTask, TeamSession

from .conftest import live, stayed_live


def test_it_moves_tasks_across_the_board_on_two_open_dashboards(open_page, memory, team):
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    coordinator.add_tasks([AgentTask("t1", "review", "check the diff", priority=5),
                           AgentTask("t2", "review", "check the docs", priority=1)])
    leads = [live(open_page(f"/teams/{team}/", user="lee")) for _ in range(2)]
    for page in leads:
        expect(page.locator("#tasks-pending #task-t1")).to_have_attribute("data-status", "pending")

    assert coordinator.claim_task("alpha", "review").task_id == "t1"
    for page in leads:
        task = page.locator("#tasks-in_progress #task-t1")
        expect(task).to_have_attribute("data-status", "in_progress")
        expect(task).to_contain_text("alpha")
        expect(page.locator("#tasks-pending #task-t1")).to_have_count(0)

    coordinator.complete_task("t1", {"findings": 0}, agent_id="alpha")
    for page in leads:
        expect(page.locator("#tasks-completed #task-t1")).to_have_attribute("data-status", "completed")
        expect(page.locator("#tasks-in_progress #task-t1")).to_have_count(0)
        expect(page.locator("#tasks-pending #task-t2")).to_be_visible()

    assert coordinator.claim_task("alpha", "review").task_id == "t2"
    coordinator.fail_task("t2", "docs missing", agent_id="alpha")
    for page in leads:
        failed = page.locator("#tasks-failed #task-t2")
        expect(failed).to_have_attribute("data-status", "failed")
        expect(failed).to_contain_text("docs missing")
        assert stayed_live(page)
        assert page.console_errors == []


def test_a_finished_column_keeps_its_newest_tasks_and_shows_a_repeated_event_once(open_page, memory, team):
    """A finished task arrives as one entry at the top of its column; the page keeps the column to
    its limit, and an event delivered twice does not show its task twice."""
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    limit = COLUMN_LIMITS["completed"]
    coordinator.add_tasks([AgentTask(f"n{i}", "review", priority=limit + 2 - i) for i in range(limit + 2)])
    lead = live(open_page(f"/teams/{team}/", user="lee"))
    items = lead.locator("#tasks-completed-list > li")
    expect(items).to_have_text(["None"])

    def finish(i):
        assert coordinator.claim_task("alpha", "review").task_id == f"n{i}"
        coordinator.complete_task(f"n{i}", {}, agent_id="alpha")

    finish(0)  # one entry in place of the placeholder
    expect(items.first).to_have_id("task-n0")
    expect(items).to_have_count(1)
    for i in range(1, limit + 2):  # entries, or whole columns when a render sees newer tasks already
        finish(i)
    expect(items.first).to_have_id(f"task-n{limit + 1}")
    expect(items).to_have_count(limit)
    expect(lead.locator("#tasks-completed-head")).to_contain_text(f"showing {limit} of {limit + 2}")
    # Newest first, as the library lists them (tasks finished in the same millisecond: by id).
    newest = [f"task-{t.task_id}" for t in coordinator.list_tasks("completed", limit=limit)]
    assert items.evaluate_all("items => items.map(li => li.id)") == newest

    newest = [e for e in memory.read_events(team, "0-0", count=1000) if e["kind"] == "task.completed"][-1]
    memory.client.xadd(memory.team(team).events, {k: v for k, v in newest.items() if k != "id"})
    coordinator.broadcast("after.repeat")  # the page has had the repeated event once this shows
    expect(lead.locator("#signal-feed")).to_contain_text("after.repeat")
    expect(lead.locator(f"#task-n{limit + 1}")).to_have_count(1)
    expect(items).to_have_count(limit)
    assert stayed_live(lead)
    assert lead.console_errors == []


def test_it_shows_agents_signals_and_sessions_as_they_happen(open_page, memory, team):
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    lead = live(open_page(f"/teams/{team}/", user="lee"))
    expect(lead.locator("#agents #agent-alpha")).to_be_visible()

    coordinator.register_agent("beta", ["security"])
    expect(lead.locator("#agents #agent-beta")).to_contain_text("security")

    coordinator.send_signal("review.done", {"pr": 7})
    expect(lead.locator("#signal-feed")).to_contain_text("review.done")
    expect(lead.locator("#signal-feed")).to_contain_text("broadcast")

    session = TeamSession(memory, "triage", "sort the backlog", team_id=team)
    session.add_agent("alpha")
    session.share("focus", "security")
    sessions = lead.locator("#sessions")
    expect(sessions).to_contain_text("alpha")
    expect(sessions).to_contain_text("focus")
    expect(sessions).to_contain_text("security")
    assert stayed_live(lead)
    assert lead.console_errors == []


def test_it_links_a_task_to_its_detail_with_the_result_and_history(open_page, site, memory, team):
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    coordinator.add_task(AgentTask("t9", "review"))
    coordinator.claim_task("alpha", "review")
    coordinator.complete_task("t9", {"findings": ["naming"], "score": 3}, agent_id="alpha")
    lead = live(open_page(f"/teams/{team}/", user="lee"))

    lead.locator("#tasks-completed #task-t9").get_by_role("link").first.click()
    expect(lead).to_have_url(f"{site.url}/teams/{team}/tasks/t9/")
    expect(lead.locator("pre#task-result")).to_contain_text('"score": 3')
    expect(lead.locator("#task-history")).to_contain_text("alpha")
    assert lead.console_errors == []


def test_it_keeps_its_websocket_through_idle_time(open_page, memory, team):
    # Idle time cannot be waited for as a condition: the page must outlast the channel layer's
    # blocking read (BZPOPMIN for brpop_timeout seconds) at least once on one WebSocket.
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    lead = live(open_page(f"/teams/{team}/", user="lee"))

    lead.wait_for_timeout((RedisChannelLayer.brpop_timeout + 1.5) * 1000)
    coordinator.add_task(AgentTask("late", "review"))

    expect(lead.locator("#tasks-pending #task-late")).to_be_visible()
    assert stayed_live(lead)
    assert lead.console_errors == []

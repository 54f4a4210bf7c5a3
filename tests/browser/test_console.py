"""No page logs an error to the console or throws, with a team at work behind it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from empathy_os import AgentCoordinator, AgentTask, StagedPattern, TeamSession

from .conftest import PASSWORD, live

PAGES = ["/", "/teams/{team}/", "/teams/{team}/tasks/done-1/", "/patterns/staging/", "/patterns/library/",
         "/patterns/decisions/", "/metrics/dashboard/"]


@pytest.fixture
def busy_team(memory, contributor, team):
    """A team with agents, tasks in every state, a signal, a session and a staged pattern."""
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    coordinator.register_agent("scout", ["review"])
    coordinator.add_tasks([AgentTask("done-1", "review"), AgentTask("failed-1", "review"),
                           AgentTask("running-1", "review"), AgentTask("waiting-1", "review")])
    coordinator.claim_task("alpha", "review")
    coordinator.complete_task("done-1", {"ok": True}, agent_id="alpha")
    coordinator.claim_task("alpha", "review")
    coordinator.fail_task("failed-1", "no access", agent_id="alpha")
    coordinator.claim_task("alpha", "review")
    coordinator.send_signal("review.started", {"pr": 1}, target_agent="scout")
    session = TeamSession(memory, "pairing", "review together", team_id=team)
    session.add_agent("alpha")
    session.share("branch", "main")
    memory.stage_pattern(contributor, StagedPattern("guard", "scout", "code_pattern", "Guard clause",
                                                    code="if not x:\n    return\n"))
    return team


def test_it_logs_in_without_console_errors(open_page, site):
    page = open_page("/accounts/login/")
    page.fill("#id_username", "vera")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{site.url}/")
    expect(page.locator("#memory-status")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.console_errors == []


@pytest.mark.parametrize("path", PAGES)
def test_it_shows_every_page_without_console_errors(open_page, busy_team, path):
    page = open_page(path.format(team=busy_team), user="vera")
    expect(page.locator("#memory-status")).to_be_visible()
    if page.locator("[ws-connect]").count():
        live(page)
        expect(page.locator("#memory-status")).to_have_text("live")
    page.wait_for_load_state("networkidle")  # what the browser fetches by itself (e.g. a favicon) has failed or not
    assert page.console_errors == []


def test_it_lists_the_team_with_a_link_to_its_dashboard(open_page, busy_team):
    page = open_page("/", user="otto")
    link = page.locator(f"a#team-{busy_team}")
    expect(link).to_have_attribute("href", f"/teams/{busy_team}/")
    link.click()
    expect(page.locator("#task-board #tasks-in_progress #task-running-1")).to_be_visible()
    assert page.console_errors == []


def test_it_gives_the_browser_an_icon(open_page):
    # The browser asks for a site's icon by itself, once per site and browser: a missing one is a
    # console error on whichever page comes first, so it is checked here, on its own.
    page = open_page("/accounts/login/")
    assert page.evaluate("""async () => {
        const icon = document.querySelector('link[rel~=icon]');
        return (await fetch(icon ? icon.href : '/favicon.ico')).ok;
    }""")

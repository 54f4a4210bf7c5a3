"""Agents' text is shown as text: markup in a pattern, a task or a signal never runs in a page.

Each payload would set ``window.__xss`` if it ran (a script, an ``onerror`` on a broken image, an
``onload`` on an svg); a broken image that got through would also log a failed request.
"""

from __future__ import annotations

from playwright.sync_api import expect

from empathy_os import AgentCoordinator, AgentTask, StagedPattern

from .conftest import live

CODE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
NAME = '<b>bold</b><img src=x onerror="window.__xss=3">'
DESCRIPTION = '<script>window.__xss=4</script><svg onload="window.__xss=5"></svg>'


def assert_nothing_ran(page):
    assert page.evaluate("window.__xss") is None
    assert page.locator("b", has_text="bold").count() == 0
    assert page.console_errors == []


def test_it_shows_markup_in_a_staged_pattern_as_text_in_the_queue_and_the_library(
        open_page, memory, contributor, team):
    review = live(open_page("/patterns/staging/", user="vera"))
    memory.stage_pattern(contributor, StagedPattern("xss", "scout", "code_pattern", NAME, DESCRIPTION,
                                                    confidence=0.5, code=CODE, context={"file": "<i>x</i>"}))

    card = review.locator(f"#pattern-{team}--xss")
    expect(card.locator("pre.code")).to_contain_text(CODE)
    expect(card).to_contain_text(NAME)
    expect(card).to_contain_text(DESCRIPTION)
    assert_nothing_ran(review)

    card.get_by_role("button", name="Approve", exact=True).click()
    expect(card).to_have_count(0)
    library = open_page("/patterns/library/", user="vera")
    entry = library.locator(f"#library-{team}--xss")
    expect(entry).to_contain_text(NAME)
    assert_nothing_ran(library)
    assert_nothing_ran(review)


def test_it_shows_a_search_term_with_markup_as_text(open_page):
    library = open_page("/patterns/library/?q=%3Cscript%3Ewindow.__xss%3D6%3C%2Fscript%3E", user="vera")
    expect(library.locator("input[name=q]")).to_have_value("<script>window.__xss=6</script>")
    assert_nothing_ran(library)


def test_it_shows_markup_in_tasks_and_signals_as_text_on_the_board_and_the_task_page(open_page, memory, team):
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("alpha", ["review"])
    lead = live(open_page(f"/teams/{team}/", user="lee"))

    coordinator.add_task(AgentTask("t1", "review", DESCRIPTION, context={"note": NAME}))
    coordinator.claim_task("alpha", "review")
    coordinator.complete_task("t1", {"html": CODE}, agent_id="alpha")
    coordinator.send_signal("note", {"text": CODE})
    expect(lead.locator("#tasks-completed #task-t1")).to_be_visible()
    expect(lead.locator("#signal-feed")).to_contain_text("note")
    assert_nothing_ran(lead)

    detail = open_page(f"/teams/{team}/tasks/t1/", user="lee")
    expect(detail.locator("pre#task-result")).to_contain_text("window.__xss=1")
    assert_nothing_ran(detail)

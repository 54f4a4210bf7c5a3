"""A validator reviews live: a pattern staged by an agent appears without reload, and a decision
takes it out of the queue into the library (approve) or the audit trail (reject)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from empathy_os import StagedPattern

from .conftest import live, stayed_live


def stage(memory, contributor, pattern_id, **fields):
    pattern = StagedPattern(pattern_id, contributor.agent_id, fields.pop("pattern_type", "code_pattern"),
                            fields.pop("name", "Retry with backoff"), **fields)
    memory.stage_pattern(contributor, pattern)
    return pattern


def test_it_shows_a_staged_pattern_without_reload_and_approves_it_into_the_library(
        open_page, memory, contributor, team):
    review = live(open_page("/patterns/staging/", user="vera"))

    stage(memory, contributor, "retry-backoff", description="Retry a flaky call, doubling the wait.",
          confidence=0.9, code="def retry(call):\n    return call()\n")

    card = review.locator(f"#staged-list #pattern-{team}--retry-backoff")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Retry with backoff")
    expect(card).to_contain_text("scout")
    expect(card.locator("pre.code")).to_contain_text("def retry(call):")
    assert stayed_live(review)

    card.get_by_role("button", name="Approve", exact=True).click()
    expect(card).to_have_count(0)

    library = open_page("/patterns/library/", user="vera")
    entry = library.locator(f"#library-{team}--retry-backoff")
    expect(entry).to_be_visible()
    expect(entry).to_contain_text("Retry with backoff")
    expect(entry.locator(".reuse")).to_have_count(1)

    decisions = open_page("/patterns/decisions/", user="vera")
    expect(decisions.locator(f"#decision-{team}--retry-backoff")).to_contain_text("vera")

    stage(memory, contributor, "retry-again", name="Retry, found again", code="def retry(call):\n    return call()\n")
    expect(review.locator(f"#pattern-{team}--retry-again .rediscovery")).to_be_visible()
    assert stayed_live(review)
    assert review.console_errors + library.console_errors + decisions.console_errors == []


def test_it_rejects_a_pattern_with_a_reason_from_the_dialog(open_page, memory, contributor, team):
    review = live(open_page("/patterns/staging/", user="vera"))
    stage(memory, contributor, "busy-wait", name="Busy wait", code="while not ready(): pass\n")

    card = review.locator(f"#pattern-{team}--busy-wait")
    card.get_by_role("button", name="Reject", exact=True).click()
    dialog = review.locator("dialog#reject-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("textarea[name=reason]").fill("spins the CPU")
    dialog.get_by_role("button", name="Reject pattern", exact=True).click()
    expect(card).to_have_count(0)
    assert stayed_live(review)

    decisions = open_page("/patterns/decisions/", user="vera")
    row = decisions.locator(f"#decision-{team}--busy-wait")
    expect(row).to_contain_text("spins the CPU")
    expect(row).to_contain_text("vera")
    library = open_page("/patterns/library/", user="vera")
    expect(library.locator(f"#library-{team}--busy-wait")).to_have_count(0)
    assert review.console_errors + decisions.console_errors + library.console_errors == []


def test_it_shows_a_new_pattern_on_every_open_review_page(open_page, memory, contributor, team):
    first = live(open_page("/patterns/staging/", user="vera"))
    second = live(open_page("/patterns/staging/", user="vera"))

    stage(memory, contributor, "cache-aside", name="Cache aside")

    for page in (first, second):
        expect(page.locator(f"#pattern-{team}--cache-aside")).to_contain_text("Cache aside")
        assert stayed_live(page)


def test_it_reviews_with_the_keyboard_and_shows_the_lock_to_another_validator(open_page, memory, contributor, team):
    vera = live(open_page("/patterns/staging/", user="vera"))
    vic = live(open_page("/patterns/staging/", user="vic"))
    stage(memory, contributor, "fan-out", name="Fan out")
    mine = vera.locator(f"#pattern-{team}--fan-out")
    expect(mine).to_be_visible()

    selected = vera.locator("#staged-list article.selected")
    for _ in range(vera.locator("#staged-list article").count()):  # j walks the queue down to this pattern
        vera.keyboard.press("j")
        expect(selected).to_have_count(1)
        if selected.get_attribute("id") == f"pattern-{team}--fan-out":
            break
    expect(mine).to_have_class(re.compile(r"\bselected\b"))
    expect(vic.locator(f"#pattern-{team}--fan-out .lock")).to_contain_text("being reviewed by vera")

    vera.keyboard.press("r")
    dialog = vera.locator("dialog#reject-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    vera.keyboard.press("a")
    for page in (vera, vic):
        expect(page.locator(f"#pattern-{team}--fan-out")).to_have_count(0)
        assert stayed_live(page)
        assert page.console_errors == []
    library = open_page("/patterns/library/", user="vic")
    expect(library.locator(f"#library-{team}--fan-out")).to_be_visible()


def test_it_approves_the_selected_patterns_in_bulk(open_page, memory, contributor, team):
    review = live(open_page("/patterns/staging/", user="vera"))
    for pattern_id in ("bulk-one", "bulk-two"):
        stage(memory, contributor, pattern_id, name=pattern_id.replace("-", " "), code=f"# {pattern_id}\n")
    for pattern_id in ("bulk-one", "bulk-two"):
        review.locator(f"#pattern-{team}--{pattern_id} input.select").check()

    review.get_by_role("button", name="Approve selected", exact=True).click()

    for pattern_id in ("bulk-one", "bulk-two"):
        expect(review.locator(f"#pattern-{team}--{pattern_id}")).to_have_count(0)
    library = open_page("/patterns/library/?q=bulk", user="vera")
    for pattern_id in ("bulk-one", "bulk-two"):
        expect(library.locator(f"#library-{team}--{pattern_id}")).to_be_visible()
    assert stayed_live(review)
    assert review.console_errors == []

"""The team pages: the team list, a team's dashboard and a task's detail, for each tier."""

from __future__ import annotations

import re
import time

import pytest

from coordination import dashboard, views
from coordination.relay import relayed
from empathy_os import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, RedisShortTermMemory, TeamSession
from tests.support import calls_per_render, expected_overview_calls, free_port, tier_user

TIERS = ("observer", "contributor", "validator", "steward")
TEAM = "review_team"


@pytest.fixture
def users(db):
    """One person per tier, plus ``nobody`` (in no tier group)."""
    out = {tier: tier_user(f"{tier}-person", tier) for tier in TIERS}
    out["nobody"] = tier_user("nobody", None)
    return out


@pytest.fixture
def as_user(client, users):
    def log_in(name):
        client.force_login(users[name])
        return client
    return log_in


@pytest.fixture
def team(site_memory):
    """A team with agents, a task in each column, signals and a session."""
    coordinator = AgentCoordinator(site_memory, TEAM)
    coordinator.register_agent("alpha", ["review"])
    coordinator.register_agent("beta", ["review", "security"])
    coordinator.add_tasks([AgentTask("t-done", "review", "done soon", priority=9),
                           AgentTask("t-held", "review", "held", priority=8),
                           AgentTask("t-bad", "security", "will fail", priority=7),
                           AgentTask("t-low", "review", "low", priority=1),
                           AgentTask("t-high", "review", "high", priority=6)])
    coordinator.claim_task("alpha", "review")
    coordinator.complete_task("t-done", {"findings": ["naming"], "score": 3}, agent_id="alpha")
    coordinator.claim_task("beta", "review")
    coordinator.claim_task("beta", "security")
    coordinator.fail_task("t-bad", "repository unreachable", agent_id="beta")
    coordinator.broadcast("review.started", {"pr": 7})
    coordinator.send_signal("nudge", {}, target_agent="alpha")
    session = TeamSession(site_memory, "triage", "sort the backlog", team_id=TEAM)
    session.add_agent("alpha")
    session.share("focus", {"area": "security"})
    return coordinator


def element(html: str, element_id: str) -> str:
    """The opening tag and content of the element with ``element_id`` (up to its matching close tag)."""
    start = html.index(f'id="{element_id}"')
    tag_start = html.rindex("<", 0, start)
    tag = re.match(r"<(\w+)", html[tag_start:]).group(1)
    depth, pos = 0, tag_start
    for m in re.finditer(rf"<(/?){tag}\b", html[tag_start:]):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            pos = tag_start + m.end()
            break
    return html[tag_start:pos]


# -- access ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/teams/{TEAM}/", f"/teams/{TEAM}/tasks/t-done/"])
def test_it_sends_anonymous_users_to_the_login_page(client, team, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", ["/", f"/teams/{TEAM}/", f"/teams/{TEAM}/tasks/t-done/"])
def test_it_refuses_a_user_without_a_tier(as_user, team, path):
    assert as_user("nobody").get(path).status_code == 403


@pytest.mark.parametrize("path", ["/", f"/teams/{TEAM}/", f"/teams/{TEAM}/tasks/t-done/"])
def test_it_refuses_other_methods(as_user, team, path):
    assert as_user("steward").post(path).status_code == 405


# -- team list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_it_lists_teams_with_counts_for_every_tier(as_user, team, site_memory, tier):
    AgentCoordinator(site_memory, "other_team").add_task(AgentTask("x", "review"))
    html = as_user(tier).get("/").content.decode()
    assert f'<a id="team-{TEAM}" href="/teams/{TEAM}/">{TEAM}</a>' in html
    assert '<a id="team-other_team" href="/teams/other_team/">' in html
    row = html[html.index(f'id="team-{TEAM}"'):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[0].startswith("2 ")  # agents (2 active)
    assert cells[1:] == ["2", "1", "1", "1"]  # pending, in progress, completed, failed
    assert f'id="memory-mode">{site_memory.mode}</strong>' in html


def test_it_reads_the_team_list_in_a_fixed_number_of_redis_calls(site_memory):
    for teams, (calls, html) in calls_per_render(site_memory, lambda: views.render_team_list(site_memory)).items():
        assert html.count('<a id="team-team') == teams
        assert calls == expected_overview_calls(site_memory)


def test_it_says_when_there_is_no_team_yet(as_user, site_memory):
    html = as_user("observer").get("/").content.decode()
    assert "No team has written to the memory yet" in html


# -- dashboard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_it_shows_the_dashboard_for_every_tier(as_user, team, tier):
    response = as_user(tier).get(f"/teams/{TEAM}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<div hx-ext="ws" ws-connect="/ws/teams/{TEAM}/"' in html
    for part in ("agents", "task-board", "tasks-pending", "tasks-in_progress", "tasks-completed", "tasks-failed",
                 "signal-feed", "sessions", "counters", "memory-status"):
        assert f'id="{part}"' in html


def test_it_shows_each_task_in_its_column_with_what_a_lead_needs(as_user, team):
    html = as_user("observer").get(f"/teams/{TEAM}/").content.decode()
    pending = element(html, "tasks-pending")
    assert pending.index('id="task-t-high"') < pending.index('id="task-t-low"')  # by priority
    assert 'data-status="pending"' in pending

    held = element(html, "task-t-held")
    assert 'data-status="in_progress"' in held and "beta" in held
    assert re.search(r'lease expires <time datetime="[^"]+" data-ts="[\d.]+" data-age="-[\d.]+"', held)
    assert f'href="/teams/{TEAM}/tasks/t-held/"' in held
    assert 'id="task-t-held"' in element(html, "tasks-in_progress")

    assert 'data-status="completed"' in element(html, "tasks-completed")
    failed = element(html, "task-t-bad")
    assert 'data-status="failed"' in failed
    assert "repository unreachable" in failed and "attempts 1 of 3" in failed


def test_it_limits_each_column_and_says_how_many_there_are(as_user, site_memory):
    coordinator = AgentCoordinator(site_memory, TEAM)
    limit = dashboard.COLUMN_LIMITS["pending"]
    total = limit + 7
    coordinator.add_tasks([AgentTask(f"t{i}", "review") for i in range(total)])
    pending = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "tasks-pending")
    assert pending.count('<li id="task-') == limit
    assert f"showing {limit} of {total}" in pending
    assert f'<span class="count">{total}</span>' in pending


def test_it_shows_agents_with_capabilities_heartbeat_and_status(as_user, team):
    agents = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "agents")
    beta = element(agents, "agent-beta")
    assert "<code>review</code>" in beta and "<code>security</code>" in beta
    assert 'data-status="active"' in beta
    assert re.search(r'<time datetime="[^"]+" data-ts="[\d.]+" data-age="[\d.]+"', beta)


def test_it_calls_agents_idle_then_gone_as_their_heartbeat_ages(team):
    active_seconds = team.memory.config.agent_active_seconds
    seen = {a["agent_id"]: a["last_seen"] for a in team.get_agents()}

    def status_at(now):
        return {a["agent_id"]: a["status"] for a in dashboard.agents_context(team, now)["agents"]}

    start = max(seen.values())
    assert status_at(start) == {"alpha": "active", "beta": "active"}
    assert status_at(min(seen.values()) + active_seconds + 1) == {"alpha": "idle", "beta": "idle"}
    assert status_at(start + dashboard.IDLE_SECONDS + 1) == {"alpha": "gone", "beta": "gone"}


def test_it_shows_the_signal_feed_newest_first_with_targets(as_user, team):
    feed = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "signal-feed")
    ids = re.findall(r'<li id="signal-(\d+_\d+)"', feed)
    assert len(ids) == 2
    nudge, started = (element(feed, f"signal-{i}") for i in ids)
    assert "nudge" in nudge and "alpha" in nudge and "broadcast" not in nudge
    assert "review.started" in started and "broadcast" in started and "coordinator" in started


def test_it_gives_each_signal_a_unique_dom_id_and_its_signal_id(as_user, team):
    signal_ids = [team.send_signal("ping", {}, target_agent="beta"), team.broadcast("pong")]
    feed = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "signal-feed")
    dom_ids = re.findall(r'<li id="(signal-\d+_\d+)"', feed)
    assert len(dom_ids) == len(set(dom_ids)) == 4
    assert re.findall(r'data-signal-id="([\d-]+)"', feed)[:2] == signal_ids[::-1]


def test_it_shows_sessions_with_participants_and_shared_context(as_user, team):
    sessions = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "sessions")
    triage = element(sessions, "session-triage")
    assert "sort the backlog" in triage and "<code>alpha</code>" in triage
    assert "<dt>focus</dt>" in triage and "&quot;area&quot;: &quot;security&quot;" in triage


@pytest.fixture
def events_read(team, monkeypatch):
    """``events_read()``: from now on, the kinds of the events the team's memory reads, in a list."""
    def start() -> list[str]:
        read = []
        read_events = team.memory.read_events

        def spy(*args, **kwargs):
            events = read_events(*args, **kwargs)
            read.extend(event["kind"] for event in events)
            return events

        monkeypatch.setattr(team.memory, "read_events", spy)
        return read
    return start


def test_it_keeps_the_newest_signals_and_reads_only_new_events_for_the_feed(team, events_read):
    for n in range(dashboard.FEED_LIMIT + 5):
        team.broadcast("tick", {"n": n})
    feed = dashboard.recent_signals(team.memory, TEAM, time.time())
    assert len(feed) == dashboard.FEED_LIMIT
    assert [s["signal_type"] for s in feed[:2]] == ["tick", "tick"] and feed[-1]["signal_type"] == "tick"

    read = events_read()
    signal_id = team.send_signal("ping", {}, target_agent="beta")
    feed = dashboard.recent_signals(team.memory, TEAM, time.time())
    assert read == ["signal.sent"]
    assert feed[0]["id"] == signal_id and feed[0]["target"] == "beta" and len(feed) == dashboard.FEED_LIMIT


def test_it_looks_further_back_for_signals_when_the_last_minute_has_too_few(team):
    """Seen from 11 minutes on, the fixture's two signals are in the third window (600 s-1 h)."""
    feed = dashboard.recent_signals(team.memory, TEAM, time.time() + 660)
    assert [s["signal_type"] for s in feed] == ["nudge", "review.started"]


# -- live updates of the lists shown newest first (dashboard.ENTRY_TEMPLATES) --------------------------


def last_event(memory, kind: str) -> dict:
    """The team's newest event of ``kind``, as the relay sends it to the pages."""
    event = [e for e in memory.read_events(TEAM, "0-0", count=10_000) if e["kind"] == kind][-1]
    return relayed(event.pop("id"), event)


def render_event(memory, event: dict) -> str:
    """What a live dashboard gets for ``event``."""
    credentials = AgentCredentials("lead", AccessTier.OBSERVER, TEAM)
    return "".join(dashboard.render_parts(memory, credentials, dashboard.parts_for_event(event), event=event))


def test_it_lists_newest_first_with_a_limit_the_page_keeps(as_user, team):
    html = as_user("observer").get(f"/teams/{TEAM}/").content.decode()
    for status, limit in dashboard.COLUMN_LIMITS.items():
        assert f'<ol id="tasks-{status}-list" class="tasks" data-limit="{limit}">' in element(html, f"tasks-{status}")
    assert f'<ol id="signal-list" class="feed" data-limit="{dashboard.FEED_LIMIT}">' in element(html, "signal-feed")


def test_it_sends_a_finished_task_as_one_entry_at_the_top_of_its_column(team):
    team.complete_task("t-held", {"ok": True}, agent_id="beta")
    html = render_event(team.memory, last_event(team.memory, "task.completed"))
    head = element(html, "tasks-completed-head")
    assert 'hx-swap-oob="true"' in head and '<span class="count">2</span>' in head and "showing" not in head
    assert re.search(r'<ol hx-swap-oob="afterbegin:#tasks-completed-list"><li id="task-t-held" data-status="completed"',
                     html)
    assert "t-done" not in html  # the column's other tasks are on the page already
    assert 'id="task-t-held"' not in element(html, "tasks-in_progress")


def test_it_sends_a_failed_task_as_one_entry_with_its_reason(team):
    team.fail_task("t-held", "tests do not pass", agent_id="beta")
    html = render_event(team.memory, last_event(team.memory, "task.failed"))
    entry = html[html.index('<ol hx-swap-oob="afterbegin:#tasks-failed-list">'):]
    assert 'id="task-t-held" data-status="failed"' in entry and "tests do not pass" in entry
    assert "t-bad" not in html and '<span class="count">2</span>' in element(html, "tasks-failed-head")


def test_it_says_how_many_a_full_column_shows_in_an_entrys_header(team):
    limit = dashboard.COLUMN_LIMITS["completed"]
    team.add_tasks([AgentTask(f"n{i}", "bulk") for i in range(limit)])
    for i in range(limit):
        team.claim_task("alpha", "bulk")
        team.complete_task(f"n{i}", {}, agent_id="alpha")
    head = element(render_event(team.memory, last_event(team.memory, "task.completed")), "tasks-completed-head")
    assert f"showing {limit} of {limit + 1}, newest first" in head


def test_it_sends_the_whole_column_when_newer_tasks_finished_since_the_event(team):
    team.complete_task("t-held", {}, agent_id="beta")
    event = last_event(team.memory, "task.completed")
    team.claim_task("alpha", "review")
    team.complete_task("t-high", {}, agent_id="alpha")
    html = render_event(team.memory, event)
    column = element(html, "tasks-completed")
    assert re.findall(r'<li id="task-([\w-]+)"', column) == ["t-high", "t-held", "t-done"]
    assert "afterbegin" not in html


def test_it_sends_a_new_signal_as_one_entry_at_the_top_of_the_feed(team):
    signal_id = team.send_signal("ping", {}, target_agent="beta")
    html = render_event(team.memory, last_event(team.memory, "signal.sent"))
    assert '<span class="count">3</span>' in element(html, "signal-feed-head")
    entry = html[html.index('<ol hx-swap-oob="afterbegin:#signal-list">'):]
    assert re.findall(r'data-signal-id="([\d-]+)"', entry) == [signal_id] and "beta" in entry
    assert "review.started" not in html and 'id="signal-feed"' not in html


def test_it_sends_the_whole_feed_when_newer_signals_were_sent_since_the_event(team):
    first = team.send_signal("ping", {}, target_agent="beta")
    event = last_event(team.memory, "signal.sent")
    second = team.broadcast("pong")
    html = render_event(team.memory, event)
    assert re.findall(r'data-signal-id="([\d-]+)"', element(html, "signal-feed"))[:2] == [second, first]
    assert "afterbegin" not in html


def test_it_counts_queue_depth_and_throughput_on_the_server(as_user, team):
    team.claim_task("alpha", "review")
    team.complete_task("t-high", {}, agent_id="alpha")
    counters = element(as_user("observer").get(f"/teams/{TEAM}/").content.decode(), "counters")
    values = dict(re.findall(r'<dd class="(\w+)">(\d+)', counters))
    assert values == {"pending": "1", "in_progress": "1", "completed": "2", "failed": "1", "throughput": "2"}


def test_it_counts_only_the_last_minute_in_throughput(team):
    later = time.time() + 61
    assert dashboard.completions_last_minute(team.memory, TEAM, time.time()) == 1
    assert dashboard.completions_last_minute(team.memory, TEAM, later) == 0


def test_it_reads_only_the_events_written_since_the_last_throughput_count(team, events_read):
    assert dashboard.completions_last_minute(team.memory, TEAM, time.time()) == 1
    read = events_read()
    team.add_task(AgentTask("t-new", "review", "new", priority=10))
    assert team.claim_task("alpha", "review").task_id == "t-new"
    team.complete_task("t-new", {}, agent_id="alpha")
    assert dashboard.completions_last_minute(team.memory, TEAM, time.time()) == 2
    assert read == ["task.added", "task.claimed", "task.completed"]

    read.clear()
    assert dashboard.completions_last_minute(team.memory, TEAM, time.time()) == 2
    assert read == []


def test_it_shows_an_empty_board_for_an_unknown_team_without_creating_it(as_user, site_memory):
    response = as_user("observer").get("/teams/nobody_here/")
    assert response.status_code == 200
    html = response.content.decode()
    for status in ("pending", "in_progress", "completed", "failed"):
        assert '<li id="task-' not in element(html, f"tasks-{status}")
    assert "No agents registered" in html
    assert site_memory.list_teams() == []


@pytest.mark.parametrize("path", ["/teams/-bad/", "/teams/bad%20id/", "/teams/" + "x" * 129 + "/",
                                  f"/teams/{TEAM}/tasks/-bad/", "/teams/-bad/tasks/t1/"])
def test_it_404s_a_bad_id(as_user, team, path):
    assert as_user("observer").get(path).status_code == 404


def test_it_escapes_markup_from_agents(as_user, site_memory):
    coordinator = AgentCoordinator(site_memory, TEAM)
    coordinator.add_task(AgentTask("xss", "review", "<script>alert(1)</script>", context={"n": "<b>x</b>"}))
    session = TeamSession(site_memory, "s1", "<img src=x onerror=alert(2)>", team_id=TEAM)
    session.share("k", "<script>alert(3)</script>")
    for path in (f"/teams/{TEAM}/", f"/teams/{TEAM}/tasks/xss/"):
        html = as_user("observer").get(path).content.decode()
        assert "<script>alert" not in html and "<b>x</b>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_reads_without_writing(as_user, team, site_memory):
    before = site_memory.read_events(TEAM, count=1000)
    as_user("steward").get(f"/teams/{TEAM}/")
    as_user("steward").get(f"/teams/{TEAM}/tasks/t-done/")
    assert site_memory.read_events(TEAM, count=1000) == before


# -- task detail -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_it_shows_a_task_with_its_result_and_lease_history(as_user, team, tier):
    response = as_user(tier).get(f"/teams/{TEAM}/tasks/t-done/")
    assert response.status_code == 200
    html = response.content.decode()
    result = element(html, "task-result")
    assert result.startswith('<pre id="task-result"')
    assert '&quot;score&quot;: 3' in result and '\n  &quot;findings&quot;: [\n    &quot;naming&quot;\n  ]' in result
    history = element(html, "task-history")
    assert [m for m in re.findall(r"<strong>(\w+)</strong>", history)] == ["added", "claimed", "completed"]
    assert "alpha" in history


def test_it_shows_why_a_task_failed(as_user, team):
    html = as_user("observer").get(f"/teams/{TEAM}/tasks/t-bad/").content.decode()
    assert "repository unreachable" in element(html, "task-history")
    assert "no result yet" in element(html, "task-result")


def test_it_404s_an_unknown_task(as_user, team):
    assert as_user("observer").get(f"/teams/{TEAM}/tasks/nope/").status_code == 404


# -- memory outage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/teams/{TEAM}/", f"/teams/{TEAM}/tasks/t1/"])
def test_it_says_the_memory_is_offline(as_user, path):
    from coordination.memory import memory_in_use

    down = RedisShortTermMemory(f"redis://127.0.0.1:{free_port()}/0")
    with memory_in_use(down):
        try:
            response = as_user("observer").get(path)
        finally:
            down.client.close()
    assert response.status_code == 503
    html = response.content.decode()
    assert 'id="memory-status"' in html and "memory offline" in html

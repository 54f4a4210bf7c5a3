"""The metrics page (/metrics/dashboard/), the Prometheus endpoint (/metrics) and the probe."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from coordination import metrics, metrics_exposition, metrics_probe
from coordination.memory import memory_in_use
from empathy_os import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    MemoryUnavailableError,
    RedisShortTermMemory,
    StagedPattern,
)
from empathy_os.bench import nearest_rank
from patterns import library
from tests.support import RedisServer, calls_per_render, expected_overview_calls, redis_calls, tier_user

PAGE = "/metrics/dashboard/"
SCRAPE = "/metrics"
TIERS = ("observer", "contributor", "validator", "steward")

HELP_LINE = re.compile(r"# HELP (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) .+")
TYPE_LINE = re.compile(r"# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<kind>counter|gauge|summary|histogram|untyped)")
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE_LINE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    rf"(?:\{{(?P<labels>{LABEL}(?:,{LABEL})*)\}})?"
    r" (?P<value>-?[0-9.]+(?:e[-+]?[0-9]+)?|NaN|[+-]Inf)"
)


@pytest.fixture
def login(client, db):
    """``login(tier)``: log the test client in as a new user of that tier (None: no tier)."""

    def as_tier(tier):
        client.force_login(tier_user(f"user-{tier}", tier))
        return client

    return as_tier


@pytest.fixture
def no_token(monkeypatch, settings):
    """No metrics token, in development (DEBUG): /metrics is open."""
    monkeypatch.delenv("EMPATHY_METRICS_TOKEN", raising=False)
    settings.DEBUG = True


def parse(text: str) -> dict:
    """Check every line of an exposition; return {(name, labels): value}."""
    helped, typed, samples = set(), {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP"):
            match = HELP_LINE.fullmatch(line)
            assert match, line
            assert match["name"] not in helped, f"two HELP lines for {match['name']}"
            helped.add(match["name"])
        elif line.startswith("# TYPE"):
            match = TYPE_LINE.fullmatch(line)
            assert match, line
            assert match["name"] in helped and match["name"] not in typed, line
            typed[match["name"]] = match["kind"]
        else:
            match = SAMPLE_LINE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            assert match["name"] in typed, f"sample before its TYPE: {line}"
            key = (match["name"], match["labels"] or "")
            assert key not in samples, f"duplicate sample {line}"
            samples[key] = float(match["value"])
    return samples


def scrape(client, **headers) -> dict:
    response = client.get(SCRAPE, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.content.decode())


def finish_tasks(memory, team: str, completed: int, failed: int = 0) -> None:
    coordinator = AgentCoordinator(memory, team)
    coordinator.register_agent("worker", ["review"])
    for i in range(completed + failed):
        coordinator.add_task(AgentTask(f"task-{i}", "review"))
        coordinator.claim_task("worker")
        if i < completed:
            coordinator.complete_task(f"task-{i}", {"ok": True})
        else:
            coordinator.fail_task(f"task-{i}", "broken input")


def promote_one(memory, team: str, pattern_id: str = "pat_1", code: str = "use select_related") -> None:
    author = AgentCredentials("author", AccessTier.CONTRIBUTOR, team)
    memory.stage_pattern(author, StagedPattern(pattern_id, "author", "optimization", "Eager loading", code=code))
    library.promote(memory, AgentCredentials("validator", AccessTier.VALIDATOR, team), pattern_id)


@pytest.fixture
def lost_memory(db):
    """A memory whose redis-server has been killed."""
    server = RedisServer()
    memory = RedisShortTermMemory(server.url)
    AgentCoordinator(memory, "t1").register_agent("a", ["x"])
    server.kill()
    with memory_in_use(memory):
        yield memory
    memory.client.close()
    server.stop()


# -- the page ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_it_shows_the_chapters_metrics_to_every_tier(login, probe, tier):
    response = login(tier).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    for key in ("task_distribution", "signal_round_trip", "pattern_staging", "coordination"):
        assert f'id="metric-{key}"' in html
    assert 'id="metrics-reuse"' in html and 'id="metrics-memory"' in html
    assert 'id="memory-status"' in html


def test_it_keeps_the_page_live_over_a_websocket(login, probe):
    html = login("observer").get(PAGE).content.decode()
    assert 'hx-ext="ws" ws-connect="/ws/metrics/"' in html
    for part in ("metrics-error", "metrics-probe", "metrics-latency", "metrics-reuse", "metrics-teams",
                 "metrics-memory"):  # what MetricsConsumer swaps in after each probe round
        assert re.search(rf'<\w+ id="{part}"[^>]*hx-swap-oob="true"', html), part
    assert re.search(r'<p id="metrics-error"[^>]* hidden></p>', html)  # nothing to say while online


def test_it_shows_the_chapters_targets_for_the_memory_mode(login, probe, site_memory):
    html = login("observer").get(PAGE).content.decode()
    target = {"mock": "1", "redis": "5", "cluster": "5"}[site_memory.mode]
    assert re.search(rf'id="metric-task_distribution".*?class="target[^"]*">&lt; {target} ms<', html, re.S)
    assert re.search(r'id="metric-coordination".*?class="target[^"]*">&lt; 50 ms<', html, re.S)


def test_it_sends_anonymous_visitors_to_log_in(client, probe, db):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/metrics/dashboard/"


def test_it_refuses_users_without_a_tier(login, probe):
    assert login(None).get(PAGE).status_code == 403


def test_it_refuses_other_methods_on_the_page(login, probe):
    assert login("steward").post(PAGE).status_code == 405


def test_it_charts_probe_samples_with_p50_and_last(login, probe):
    for _ in range(3):
        probe.process_one()
    html = login("observer").get(PAGE).content.decode()
    card = re.search(r'<article class="metric card" id="metric-signal_round_trip">.*?</article>', html, re.S)[0]
    points = re.search(r'<polyline points="([^"]+)"', card)[1].split()
    assert len(points) == 3
    values = re.search(r'data-values="([^"]+)"', card)[1].split(",")
    assert len(values) == 3 and all(float(v) > 0 for v in values)
    assert re.search(r'class="p50">[0-9.]+ (ms|s)<', card)
    assert re.search(r'class="last">[0-9.]+ (ms|s)<', card)
    assert "3 samples" in card


def test_it_charts_the_coordination_latency_of_real_tasks(login, probe, site_memory):
    finish_tasks(site_memory, "review_team", completed=2)
    html = login("observer").get(PAGE).content.decode()
    card = re.search(r'id="metric-coordination">.*?</article>', html, re.S)[0]
    assert len(re.search(r'<polyline points="([^"]+)"', card)[1].split()) == 2
    row = re.search(r'<tr id="metrics-team-review_team">.*?</tr>', html, re.S)[0]
    assert re.search(r"<td>[0-9.]+ (ms|s)</td>", row)


def test_it_reads_every_team_in_a_fixed_number_of_redis_calls(site_memory, probe, db):
    renders = calls_per_render(site_memory, lambda: "".join(metrics.render_parts(site_memory, metrics.ROUND_PARTS)))
    for teams, (calls, html) in renders.items():
        assert html.count('<tr id="metrics-team-team') == teams
        assert calls == expected_overview_calls(site_memory)
    with redis_calls(site_memory.client) as live:  # a team event's update: no DBSIZE, no INFO
        metrics.render_parts(site_memory, metrics.parts_for_event("task.claimed"))
    assert live == ["PIPELINE", "PIPELINE", "PIPELINE"]


def test_it_says_when_there_are_no_samples_yet(login, probe):
    html = login("observer").get(PAGE).content.decode()
    assert "No samples yet" in html and "No claimed tasks yet." in html
    assert "probe not running in this process" in html


def test_it_shows_bounded_memory_figures(login, probe, site_memory):
    finish_tasks(site_memory, "review_team", completed=1)
    probe.process_one()
    html = login("observer").get(PAGE).content.decode()
    section = re.search(r'<section id="metrics-memory".*?</section>', html, re.S)[0]
    assert f'<td class="keys">{site_memory.get_stats()["keys"]}</td>' in section
    assert "Finished task records" in section and "10,000 per kind and team" in section
    assert 'id="metrics-keys-chart"' in section


def test_it_shows_the_pattern_reuse_rate(login, probe, site_memory):
    promote_one(site_memory, "review_team")
    library.search("review_team", q="select_related")  # a hit
    library.search("review_team", q="no such thing")  # a miss
    html = login("observer").get(PAGE).content.decode()
    row = re.search(r'<tr id="metrics-reuse-review_team">.*?</tr>', html, re.S)[0]
    assert row == ('<tr id="metrics-reuse-review_team"><td>review_team</td><td>1</td><td>2</td><td>1</td>'
                   "<td>50%</td></tr>")


def test_it_shows_the_page_while_the_memory_is_offline(login, lost_memory, monkeypatch):
    monkeypatch.setattr(metrics_probe, "PROBE", metrics_probe.Probe(memory_getter=lambda: lost_memory))
    response = login("observer").get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<p id="metrics-error" class="error" hx-swap-oob="true">Memory offline: ', html)
    assert '<span id="memory-status" hx-swap-oob="true" class="badge badge-offline">memory offline</span>' in html


# -- the Prometheus endpoint ---------------------------------------------------------------------------------


def test_it_serves_the_prometheus_text_format(client, probe, site_memory, no_token, db):
    finish_tasks(site_memory, "review_team", completed=2, failed=1)
    probe.process_one()
    samples = scrape(client)
    assert samples[("empathy_up", "")] == 1
    assert samples[("empathy_memory_mode", f'mode="{site_memory.mode}"')] == 1
    assert samples[("empathy_keys", "")] == site_memory.get_stats()["keys"]
    for operation in ("task_distribution", "signal_round_trip", "pattern_staging"):
        assert samples[("empathy_probe_latency_seconds", f'operation="{operation}"')] > 0
        assert samples[("empathy_probe_latency_p50_seconds", f'operation="{operation}"')] > 0
    assert samples[("empathy_probe_runs_total", "")] == 1


def test_it_declares_help_and_type_for_every_family(client, probe, no_token, db):
    text = client.get(SCRAPE).content.decode()
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert dict(families) == {
        "empathy_up": "gauge", "empathy_memory_mode": "gauge", "empathy_keys": "gauge", "empathy_tasks": "gauge",
        "empathy_tasks_completed_total": "counter", "empathy_tasks_failed_total": "counter",
        "empathy_agents_active": "gauge", "empathy_patterns_staged": "gauge",
        "empathy_coordination_latency_seconds": "gauge", "empathy_coordination_latency_p50_seconds": "gauge",
        "empathy_library_patterns": "gauge", "empathy_library_lookups_total": "counter",
        "empathy_library_hits_total": "counter", "empathy_pattern_reuse_rate": "gauge",
        "empathy_probe_latency_seconds": "gauge", "empathy_probe_latency_p50_seconds": "gauge",
        "empathy_probe_runs_total": "counter", "empathy_probe_errors_total": "counter",
    }


def test_it_reflects_tasks_agents_and_patterns_of_each_team(client, probe, site_memory, no_token, db):
    before = scrape(client)
    assert ("empathy_tasks_completed_total", 'team="review_team"') not in before
    finish_tasks(site_memory, "review_team", completed=3, failed=1)
    AgentCoordinator(site_memory, "review_team").add_task(AgentTask("waiting", "review"))
    site_memory.stage_pattern(AgentCredentials("worker", AccessTier.CONTRIBUTOR, "review_team"),
                            StagedPattern("pat_x", "worker", "style", "Guard clauses"))
    after = scrape(client)
    team = 'team="review_team"'
    assert after[("empathy_tasks_completed_total", team)] == 3
    assert after[("empathy_tasks_failed_total", team)] == 1
    assert after[("empathy_tasks", f'status="pending",{team}')] == 1  # labels in name order
    assert after[("empathy_tasks", f'status="completed",{team}')] == 3
    assert after[("empathy_tasks", f'status="failed",{team}')] == 1
    assert after[("empathy_agents_active", team)] == 1
    assert after[("empathy_patterns_staged", team)] == 1
    assert after[("empathy_coordination_latency_p50_seconds", team)] >= 0


def test_it_reports_the_pattern_library_and_reuse_rate(client, probe, site_memory, no_token, db):
    assert str(scrape(client)[("empathy_pattern_reuse_rate", "")]) == "nan"  # no look-up yet
    promote_one(site_memory, "review_team")
    library.search("review_team", q="select_related")
    library.search("review_team", q="nothing like it")
    library.search("review_team", q="eager")
    samples = scrape(client)
    assert samples[("empathy_library_patterns", 'team="review_team"')] == 1
    assert samples[("empathy_library_lookups_total", 'team="review_team"')] == 3
    assert samples[("empathy_library_hits_total", 'team="review_team"')] == 2
    assert samples[("empathy_pattern_reuse_rate", "")] == pytest.approx(2 / 3)


def test_it_writes_team_ids_verbatim_in_labels(client, probe, site_memory, no_token, db):
    finish_tasks(site_memory, "Team-1.eu_west", completed=1)
    samples = scrape(client)
    assert samples[("empathy_tasks_completed_total", 'team="Team-1.eu_west"')] == 1


def test_it_escapes_label_values_and_help_text():
    family = metrics_exposition.counter("x_total", "Help with a \\ backslash\nand a new line.", ["team"],
                                        [(['q"uo\\te\n'], 2)])
    registry = CollectorRegistry()
    registry.register(type("One", (), {"collect": lambda self: [family]})())
    body, content_type = metrics_exposition.exposition(registry)
    text = body.decode()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert text == ('# HELP x_total Help with a \\\\ backslash\\nand a new line.\n# TYPE x_total counter\n'
                    'x_total{team="q\\"uo\\\\te\\n"} 2.0\n')
    assert parse(text) == {("x_total", 'team="q\\"uo\\\\te\\n"'): 2}


def test_it_is_written_by_prometheus_client_and_parsed_back_by_it(client, probe, site_memory, no_token, db):
    finish_tasks(site_memory, "review_team", completed=2)
    text = client.get(SCRAPE).content.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["empathy_tasks_completed"].type == "counter"  # prometheus_client's family name
    assert [(s.name, s.labels, s.value) for s in families["empathy_tasks_completed"].samples] == [
        ("empathy_tasks_completed_total", {"team": "review_team"}, 2.0)]
    assert "# TYPE empathy_tasks_completed_total counter" in text.splitlines()


def test_it_speaks_openmetrics_when_the_scraper_asks(client, probe, site_memory, no_token, db):
    finish_tasks(site_memory, "review_team", completed=1)
    response = client.get(SCRAPE, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE empathy_tasks_completed counter" in text.splitlines()
    assert 'empathy_tasks_completed_total{team="review_team"} 1.0' in text.splitlines()


def test_it_reports_a_memory_outage_as_down_not_as_an_error(client, lost_memory, monkeypatch, no_token):
    monkeypatch.setattr(metrics_probe, "PROBE", metrics_probe.Probe(memory_getter=lambda: lost_memory))
    samples = scrape(client)
    assert samples[("empathy_up", "")] == 0
    assert samples[("empathy_memory_mode", 'mode="redis"')] == 1
    assert not any(name == "empathy_tasks" for name, _ in samples)


def test_it_requires_the_bearer_token_when_one_is_set(client, probe, monkeypatch, db):
    monkeypatch.setenv("EMPATHY_METRICS_TOKEN", "s3cret-token")
    missing = client.get(SCRAPE)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get(SCRAPE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(SCRAPE, HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token")[("empathy_up", "")] == 1


def test_it_is_open_without_a_token_in_development(client, probe, no_token, db):
    assert client.get(SCRAPE).status_code == 200


def test_in_production_it_refuses_without_a_token_and_says_which_setting_opens_it(client, probe, monkeypatch,
                                                                                   settings, db):
    monkeypatch.delenv("EMPATHY_METRICS_TOKEN", raising=False)
    settings.DEBUG = False
    refused = client.get(SCRAPE)
    assert refused.status_code == 403 and "EMPATHY_METRICS_TOKEN" in refused.content.decode()
    assert "empathy_up" not in refused.content.decode()
    monkeypatch.setenv("EMPATHY_METRICS_TOKEN", "s3cret-token")
    assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token")[("empathy_up", "")] == 1


def test_it_refuses_other_methods_on_the_endpoint(client, probe, no_token, db):
    assert client.post(SCRAPE).status_code == 405


# -- the probe ------------------------------------------------------------------------------------------------


def test_it_probes_in_a_team_and_prefix_of_its_own(site_memory, probe):
    measured = probe.process_one()
    assert set(measured) == {"task_distribution", "signal_round_trip", "pattern_staging", "keys"}
    assert site_memory.list_teams() == []  # the site's team list and counters stay clean
    probe_memory = metrics_probe.probe_memory_for(site_memory)
    assert probe_memory.list_teams() == ["probe"]
    assert AgentCoordinator(probe_memory, "probe").count_tasks()["pending"] == 0


def test_it_keeps_the_probes_keys_bounded(site_memory, probe):
    for _ in range(80):
        probe.process_one()
    keys = site_memory.get_stats()["keys"]
    for _ in range(80):
        probe.process_one()
    assert site_memory.get_stats()["keys"] <= keys + 2  # finished probe tasks are trimmed
    assert len(probe.series["task_distribution"].samples()) == metrics_probe.WINDOW  # a capped ring
    assert probe.series["task_distribution"].count == 160
    probe_capped = metrics_probe.Probe(memory_getter=lambda: site_memory, capacity=5)
    for _ in range(7):
        probe_capped.process_one()
    assert len(probe_capped.series["pattern_staging"].samples()) == 5
    assert probe_capped.series["pattern_staging"].count == 7


def test_it_counts_probe_rounds_that_fail(lost_memory):
    probe = metrics_probe.Probe(memory_getter=lambda: lost_memory)
    with pytest.raises(MemoryUnavailableError):
        probe.process_one()
    assert (probe.runs, probe.errors) == (1, 1)
    assert probe.last_error.startswith("MemoryUnavailableError")
    assert probe.series["task_distribution"].samples() == []


def test_it_tells_the_live_pages_after_each_round_even_a_failed_one(site_memory, lost_memory):
    told = []
    probe = metrics_probe.Probe(memory_getter=lambda: site_memory, notify=lambda: told.append(probe.runs))
    probe.round()
    probe.memory_getter = lambda: lost_memory
    probe.round()  # an outage is counted, not raised
    assert told == [1, 2] and probe.errors == 1


def test_it_keeps_probing_when_the_pages_cannot_be_told(site_memory):
    def unreachable():
        raise ConnectionError("channel layer down")

    probe = metrics_probe.Probe(memory_getter=lambda: site_memory, notify=unreachable)
    probe.round()
    probe.round()
    assert probe.runs == 2 and probe.errors == 0


def test_it_runs_the_probe_in_a_thread_until_stopped(site_memory):
    rounds = threading.Semaphore(0)

    class Counting(metrics_probe.Probe):
        def process_one(self):
            measured = super().process_one()
            rounds.release()
            return measured

    probe = Counting(memory_getter=lambda: site_memory, interval=0.01)
    stop = threading.Event()
    thread = probe.start(stop)
    assert probe.start(stop) is thread  # once per process
    assert rounds.acquire(timeout=10) and rounds.acquire(timeout=10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and not probe.running


def test_it_takes_nearest_rank_quantiles_and_formats_latencies():
    assert nearest_rank([], 50) is None
    assert nearest_rank([3, 1, 2], 50) == 2
    assert nearest_rank(range(1, 101), 99) == 99
    assert metrics.format_ms(0.4217) == "0.42 ms" and metrics.format_ms(1840) == "1.84 s"

"""What the demo's simulated work looks like: review and deployment tasks, their results, and the
patterns agents discover (the first of each task type seeds the library). Data and pure functions
only; the actors that do the work are in ``coordination.demo``."""

from __future__ import annotations

import random

from empathy_os import AgentTask, StagedPattern

PREFIX = {"security_review": "sec", "performance_review": "perf", "style_review": "style",
          "deploy_check": "deploy", "capacity_planning": "cap"}

WORK = {
    "review_team": {
        "session": "pr_review", "purpose": "Review PR", "context_key": "pr_context",
        "titles": ["Authentication refactor", "Add rate limiting to the public API", "Cache user profiles",
                   "Migrate billing to the new ledger", "Bulk export of audit logs", "Password reset flow"],
        "files": ["auth.py", "api.py", "billing/ledger.py", "users/models.py", "exports/csv.py",
                  "middleware/ratelimit.py", "templates/profile.html", "tests/test_auth.py"],
    },
    "platform_team": {
        "session": "release", "purpose": "Release", "context_key": "release_context",
        "titles": ["Weekly release", "Hotfix for session expiry", "Kernel patch rollout", "Redis upgrade"],
        "files": ["api-gateway", "worker-pool", "scheduler", "web-frontend", "search-indexer"],
    },
}

DESCRIPTIONS = {
    "security_review": "Review {file} for vulnerabilities (#{number})",
    "performance_review": "Profile the queries and hot paths of {file} (#{number})",
    "style_review": "Check {file} against the style guide (#{number})",
    "deploy_check": "Pre-deployment checks for {file} (release {number})",
    "capacity_planning": "Capacity plan for {file} after release {number}",
}

PRIORITIES = {"security_review": (7, 9), "performance_review": (5, 7), "style_review": (2, 4),
              "deploy_check": (6, 9), "capacity_planning": (3, 5)}

FAILURE_REASONS = [
    "timed out fetching the diff from the VCS",
    "static analyser crashed on a generated file",
    "rate limited by the code-search service",
    "could not resolve the base commit (force-pushed branch)",
    "test environment unavailable",
]

#: Patterns agents discover, per task type. The first of each type seeds the library.
PATTERNS = {
    "security_review": [
        {"slug": "param_sql", "keyword": "parameterised", "type": "security", "name": "Parameterised SQL queries",
         "description": "Pass user input as query parameters, never by string formatting (parameterised queries).",
         "code": 'cursor.execute("SELECT * FROM users WHERE email = %s", [email])'},
        {"slug": "escape_html", "keyword": "escape", "type": "security", "name": "Let the template escape user content",
         "description": "Never build HTML from user input by hand: the template engine escapes it.",
         "code": '# Before (XSS): a comment of "<script>fetch(\'/steal?c=\' + document.cookie)</script>"\n'
                 'html = f"<p>{comment.body}</p>"\n\n# After: the template escapes it\n<p>{{ comment.body }}</p>'},
        {"slug": "compare_digest", "keyword": "compare_digest", "type": "security",
         "name": "Constant-time token comparison",
         "description": "Compare secrets with hmac.compare_digest so timing does not leak them.",
         "code": "if not hmac.compare_digest(given_token, expected_token):\n    raise PermissionDenied"},
    ],
    "performance_review": [
        {"slug": "eager_load", "keyword": "select_related", "type": "optimization",
         "name": "Eager Loading for N+1 Queries",
         "description": "Replace lazy loading with eager loading when iterating over related objects",
         "code": "users = User.objects.select_related('profile').all()\nfor user in users:\n"
                 "    print(user.profile.name)  # No additional queries"},
        {"slug": "bulk_create", "keyword": "bulk_create", "type": "optimization", "name": "Batch inserts",
         "description": "Insert rows in one statement with bulk_create instead of one save() each.",
         "code": "Event.objects.bulk_create([Event(**row) for row in rows], batch_size=500)"},
        {"slug": "lru_cache", "keyword": "lru_cache", "type": "optimization", "name": "Memoise pure lookups",
         "description": "Cache results of a pure, hot function with functools.lru_cache.",
         "code": "@functools.lru_cache(maxsize=1024)\ndef tax_rate(country: str) -> Decimal:\n    ..."},
    ],
    "style_review": [
        {"slug": "lazy_logging", "keyword": "log.info", "type": "style", "name": "Lazy logging arguments",
         "description": "Pass logging arguments separately so messages are only formatted when emitted.",
         "code": 'log.info("user %s logged in", user_id)'},
        {"slug": "no_bare_except", "keyword": "except", "type": "style", "name": "Catch what you expect",
         "description": "Catch named exceptions; a bare except hides bugs and KeyboardInterrupt.",
         "code": "try:\n    value = int(raw)\nexcept ValueError:\n    value = default"},
        {"slug": "early_return", "keyword": "guard", "type": "style", "name": "Guard clauses",
         "description": "Return early on the guard conditions instead of nesting the happy path.", "code": None},
    ],
    "deploy_check": [
        {"slug": "readiness_probe", "keyword": "readinessProbe", "type": "reliability",
         "name": "Readiness probe before traffic",
         "description": "Route traffic to a pod only once its readiness probe passes.",
         "code": "readinessProbe:\n  httpGet: {path: /healthz, port: 8080}\n  periodSeconds: 5"},
        {"slug": "canary", "keyword": "canary", "type": "reliability", "name": "Canary first",
         "description": "Send 5% of traffic to the new version and compare error rates before the rollout.",
         "code": None},
    ],
    "capacity_planning": [
        {"slug": "headroom", "keyword": "headroom", "type": "capacity", "name": "Keep 30% CPU headroom",
         "description": "Scale out when sustained CPU use passes 70%, so a zone failure fits.", "code": None},
        {"slug": "queue_depth", "keyword": "queue depth", "type": "capacity", "name": "Autoscale on queue depth",
         "description": "Scale workers on queue depth per worker, not on CPU.",
         "code": "target_queue_depth_per_worker: 20\nmin_workers: 2\nmax_workers: 40"},
    ],
}


def describe(task_type: str, name: str, number: int) -> str:
    return DESCRIPTIONS[task_type].format(file=name, number=number)


def priority(task_type: str, rng: random.Random) -> int:
    low, high = PRIORITIES[task_type]
    return 10 if rng.random() < 0.05 else rng.randint(low, high)  # now and then, urgent


def context_for(team_id: str, number: int, title: str, files: list, rng: random.Random) -> dict:
    if team_id == "review_team":
        return {"pr_number": number, "title": title, "author": f"developer_{rng.randint(100, 999)}",
                "files_changed": files, "lines_added": rng.randint(20, 600), "lines_removed": rng.randint(0, 300)}
    return {"release": number, "title": title, "services": files, "change_window": "14:00-16:00 UTC",
            "rollback_plan": "previous image tag, feature flags off"}


def result_for(task_type: str, context: dict, rng: random.Random) -> dict:
    """A plausible result for a task of ``task_type``: always a ``summary``; ``critical`` if it is."""
    name, ms = context.get("file", "?"), rng.randint(300, 4000)
    if task_type == "security_review":
        vulns, warnings = (1 if rng.random() < 0.1 else 0), rng.randint(0, 4)
        findings = [{"file": name, "line": rng.randint(10, 400), "rule": rng.choice(
            ["B608 SQL built from strings", "B105 hard-coded password", "B303 weak hash", "B201 debug mode"]),
            "severity": "high" if vulns else "medium"} for _ in range(vulns + min(warnings, 2))]
        return {"summary": f"{vulns} vulnerabilities, {warnings} warnings in {name}", "critical": bool(vulns),
                "vulnerabilities": vulns, "warnings": warnings, "findings": findings, "time_taken_ms": ms}
    if task_type == "performance_review":
        before = rng.randint(3, 120)
        after = max(1, before // rng.randint(1, 12))
        return {"summary": f"{before} -> {after} queries per request in {name}", "queries_before": before,
                "queries_after": after, "p95_ms": rng.randint(20, 900), "time_taken_ms": ms,
                "hotspots": [f"{name}:{rng.randint(10, 300)}" for _ in range(rng.randint(0, 3))]}
    if task_type == "style_review":
        violations = rng.randint(0, 15)
        return {"summary": f"{violations} style violations in {name}", "violations": violations,
                "auto_fixable": rng.randint(0, violations), "time_taken_ms": ms,
                "rules": {"E501": rng.randint(0, 5), "F401": rng.randint(0, 3), "N802": rng.randint(0, 2)}}
    if task_type == "deploy_check":
        failed = 1 if rng.random() < 0.1 else 0
        return {"summary": f"{name}: {12 - failed}/12 checks passed", "critical": bool(failed),
                "checks_passed": 12 - failed, "checks_failed": failed, "image": f"{name}:{rng.randint(1000, 9999)}",
                "rollout": "blocked" if failed else "canary 5%", "time_taken_ms": ms}
    headroom = rng.randint(8, 60)
    return {"summary": f"{name}: {headroom}% CPU headroom at peak", "cpu_headroom_pct": headroom,
            "recommendation": "add 2 nodes" if headroom < 30 else "no change", "time_taken_ms": ms}


def staged_pattern(spec: dict, pattern_id: str, agent_id: str, task: AgentTask | None,
                   rng: random.Random) -> StagedPattern:
    context = {"discovered_in": task.context.get("session"), "file": task.context.get("file"),
               "task_id": task.task_id} if task else {"source": "team handbook"}
    return StagedPattern(pattern_id=pattern_id, agent_id=agent_id, pattern_type=spec["type"], name=spec["name"],
                         description=spec["description"], confidence=round(rng.uniform(0.6, 0.97), 2),
                         code=spec["code"], context=context)

"""Security: token guessing is rate-limited, tokens never reach the logs, every dashboard POST needs
the CSRF token, WebSockets from other origins are refused, and pages and API answers carry the
security headers (a Content-Security-Policy on pages)."""

from __future__ import annotations

import json
import logging
import re

import fakeredis
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import get_resolver

from coordination.memory import memory_in_use
from coordination.tokens import issue_token, revoke_tokens, token_limiter
from empathy_os import Config, RedisShortTermMemory
from empathy_os.keys import failures_key
from empathy_os.ratelimit import FailureLimiter
from empathy_site.asgi import application
from tests.support import Api

pytestmark = pytest.mark.django_db(transaction=True)

TEAM = "sec"
LIMIT = 3


def make_memory(backend: str, request, **config) -> RedisShortTermMemory:
    config = Config(**config)
    if backend == "mock":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        return RedisShortTermMemory(client=client, config=config)
    memory = RedisShortTermMemory(request.getfixturevalue("redis_url"), config=config)
    request.addfinalizer(memory.client.close)
    return memory


@pytest.fixture(params=["mock", "redis"])
def site_memory(request):
    """A fresh memory with a bad-token limit of LIMIT per minute, as the site's memory."""
    memory = make_memory(request.param, request, auth_failure_limit=LIMIT, auth_failure_window=60)
    with memory_in_use(memory):
        yield memory


@pytest.fixture
def token():
    return issue_token("agent-1", TEAM, "contributor", created_by="tests")[0]


def get(path: str, token: str | None = None, client_ip: str = "10.0.0.1"):
    return Api().get(path, token=token, REMOTE_ADDR=client_ip)


# -- token brute force --------------------------------------------------------------------------------


def test_it_refuses_an_address_that_sent_too_many_bad_tokens(site_memory, token):
    for i in range(LIMIT):
        assert get("/api/v1/stats", f"emp_guess-{i}").status_code == 401
    refused = get("/api/v1/stats", "emp_guess-last")
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Even the right token is refused from that address now (else guessing would still pay) ...
    assert get("/api/v1/stats", token).status_code == 429
    # ... while other addresses are not affected.
    assert get("/api/v1/stats", token, client_ip="10.0.0.2").status_code == 200
    assert get("/api/v1/stats", "emp_wrong", client_ip="10.0.0.2").status_code == 401


def test_it_lets_good_tokens_through_without_counting_them(site_memory, token):
    for _ in range(LIMIT * 3):
        assert get("/api/v1/stats", token).status_code == 200
    assert get("/api/v1/stats", "emp_wrong").status_code == 401


def test_it_counts_failures_in_redis_for_every_process_and_lets_them_expire(site_memory):
    key = failures_key(site_memory.config.key_prefix, "token", "10.0.0.9")
    mine = token_limiter(site_memory)
    for _ in range(LIMIT):
        assert mine.record_failure("10.0.0.9") == 0
    assert 0 < site_memory.client.ttl(key) <= 60  # the window ends: the count is not kept for ever
    # Another server process (its own limiter, same Redis) refuses the address at its first failure.
    other = FailureLimiter(site_memory, "token", LIMIT, 60)
    assert other.retry_after("10.0.0.9") == 0
    assert other.record_failure("10.0.0.9") > 0
    assert other.retry_after("10.0.0.9") > 0


def test_it_hashes_client_names_that_are_not_addresses(site_memory):
    key = failures_key("empathy", "token", "evil}{:* key\n")
    assert re.fullmatch(r"empathy:\{client:[0-9a-f]{32}\}:failures:token", key)
    assert failures_key("empathy", "token", "::1") == "empathy:{client:::1}:failures:token"


def test_it_refuses_bad_tokens_with_503_when_redis_cannot_count_them(transactional_db, token, private_redis):
    memory = RedisShortTermMemory(private_redis.url, config=Config(auth_failure_limit=LIMIT))
    with memory_in_use(memory):
        try:
            private_redis.kill()
            response = get("/api/v1/stats", "emp_guess")
            assert response.status_code == 503 and response["Retry-After"].isdigit()
        finally:
            memory.client.close()


# -- tokens never logged ------------------------------------------------------------------------------


def test_it_never_logs_a_token(site_memory, token, caplog):
    caplog.set_level(logging.DEBUG)
    revoked = issue_token("agent-2", TEAM, "contributor", created_by="tests")[0]
    revoke_tokens("agent-2", TEAM)
    bad = "emp_" + "Z" * 43
    api = Api()
    calls = [("GET", "/stats"), ("GET", "/nowhere"), ("POST", "/tasks"),
             ("PUT", "/memory/k"), ("GET", "/tasks/no-such-task"), ("GET", "/memory/bad%20id")]
    for secret in (token, revoked, bad):
        for method, path in calls:
            api.request(method, path, data="{not json", token=secret)
    for _ in range(LIMIT + 1):  # the rate limiter's refusals too
        get("/api/v1/stats", bad)
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for secret in (token, revoked, bad):
        for record in caplog.records:
            shown = record.getMessage() + repr(record.__dict__)
            assert secret not in shown, (record.name, record.getMessage())
            assert secret[4:] not in shown


# -- CSRF on every dashboard POST ---------------------------------------------------------------------

SAMPLE = {"team_id": TEAM, "pattern_id": "p1", "task_id": "t1"}


def site_paths() -> list[str]:
    """Every URL of the site outside the API, with sample values in its parameters."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, route)
            else:
                yield route

    paths = []
    for route in walk(get_resolver().url_patterns):
        if route.startswith("api/"):
            continue
        paths.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE[m[1]], route))
    return paths


@pytest.fixture
def steward_client(site_memory):
    user = User.objects.create_superuser("root-1", password="a-long-password-9")
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    return client


def test_it_lists_every_post_view(steward_client):
    paths = site_paths()
    for name in ("approve", "reject", "lock", "unlock", "bulk"):
        assert any(p.endswith(f"/{name}/") for p in paths), name
    assert "/accounts/logout/" in paths and "/accounts/login/" in paths


def test_it_refuses_every_post_without_the_csrf_token(steward_client):
    refused = {}
    for path in site_paths():
        response = steward_client.post(path, {"action": "approve", "pattern": f"{TEAM}/p1", "reason": "x"})
        refused[path] = (response.status_code, b"CSRF" in response.content)
    assert refused and all(v == (403, True) for v in refused.values()), refused


def test_it_accepts_posts_with_the_csrf_token(steward_client):
    page = steward_client.get("/patterns/staging/")
    assert page.status_code == 200
    csrf = steward_client.cookies["csrftoken"].value
    for path in site_paths():
        if not re.search(r"/(approve|reject|lock|unlock|bulk)/$|/logout/$", path):
            continue
        response = steward_client.post(path, {"action": "approve", "pattern": f"{TEAM}/p1", "reason": "x"},
                                       HTTP_X_CSRFTOKEN=csrf)
        assert b"CSRF" not in response.content and response.status_code != 403, \
            (path, response.status_code, response.content[:200])


# -- WebSocket origin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [b"http://evil.example", b"https://localhost.evil.example", b"null"])
async def test_it_refuses_websockets_from_other_origins(site_memory, origin):
    communicator = WebsocketCommunicator(application, f"/ws/teams/{TEAM}/",
                                         headers=[(b"origin", origin), (b"host", b"localhost")])
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()


async def test_it_accepts_a_websocket_from_its_own_origin(site_memory, settings):
    settings.EMPATHY_EMBEDDED_RELAY = False

    def login_cookie():
        user = User.objects.create_superuser("root-2", password="a-long-password-9")
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    cookie = await database_sync_to_async(login_cookie)()
    communicator = WebsocketCommunicator(application, f"/ws/teams/{TEAM}/",
                                         headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"),
                                                  (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.disconnect()


# -- security headers ---------------------------------------------------------------------------------

COMMON = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


def test_it_sets_security_headers_on_pages(steward_client):
    for path in ("/", f"/teams/{TEAM}/", "/patterns/staging/", "/accounts/login/"):
        response = steward_client.get(path)
        assert response.status_code == 200, path
        for name, value in COMMON.items():
            assert response.get(name) == value, (path, name, response.get(name))
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script would be blocked by the CSP"
        assert not re.search(r"\son[a-z]+=", html), "an inline event handler would be blocked by the CSP"
        for src in re.findall(r'<script[^>]*\bsrc="([^"]+)"', html):
            assert src.startswith("/static/"), src


def test_it_sets_security_headers_on_the_api(site_memory, token):
    for response in (get("/api/v1/health"), get("/api/v1/stats", token), get("/api/v1/stats", "emp_bad"),
                     get("/api/v1/nowhere", token)):
        for name, value in COMMON.items():
            assert response.get(name) == value, (response.status_code, name, response.get(name))
        assert response["Content-Type"].startswith("application/json")
        json.loads(response.content)


# -- logging in ------------------------------------------------------------------------------------


def log_in(password: str, client_ip: str = "10.0.0.1"):
    return Client().post("/accounts/login/", {"username": "lee", "password": password}, REMOTE_ADDR=client_ip)


def test_it_rate_limits_guessing_passwords_per_address(site_memory):
    User.objects.create_user("lee", password="right-password-9")
    for _ in range(LIMIT):
        failed = log_in("wrong")
        assert failed.status_code == 200 and b"didn't match" in failed.content

    refused = log_in("wrong")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert b'id="login-refused"' in refused.content
    assert log_in("right-password-9").status_code == 429  # a lucky guess gets no further
    assert log_in("right-password-9", client_ip="10.0.0.2").status_code == 302  # other addresses may


def test_it_logs_in_without_counting_a_success(site_memory):
    User.objects.create_user("lee", password="right-password-9")
    for _ in range(LIMIT + 2):
        assert log_in("right-password-9").status_code == 302


def test_it_refuses_a_failed_login_it_cannot_count(site_memory, monkeypatch):
    from empathy_os import MemoryUnavailableError

    User.objects.create_user("lee", password="right-password-9")

    def down(*args, **kwargs):
        raise MemoryUnavailableError("Redis did not answer")

    monkeypatch.setattr(FailureLimiter, "record_failure", down)
    refused = log_in("wrong")
    assert refused.status_code == 503 and refused["Retry-After"]
    assert log_in("right-password-9").status_code == 302

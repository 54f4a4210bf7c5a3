"""The real ASGI entry point: API requests take the lean stack, and still answer JSON with headers."""

import json

import pytest

from empathy_site.asgi import application
from tests.support import asgi_request


async def call(method, path, body=b"", headers=()):
    """One request through the real ASGI application."""
    return await asgi_request(application, method, path, body, headers)


async def test_it_answers_health_as_json_with_security_headers(site_memory):
    response = await call("GET", "/api/v1/health")
    assert response["status"] == 200
    assert json.loads(response["body"])["memory_mode"] == site_memory.mode
    headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/api/v1/no-such-endpoint", 404, "not_found"),
    ("DELETE", "/api/v1/health", 405, "method_not_allowed"),
    ("GET", "/api/v1/stats", 401, "unauthorized"),
])
async def test_it_keeps_errors_json_on_the_lean_stack(site_memory, method, path, status, code):
    response = await call(method, path)
    assert response["status"] == status
    body = json.loads(response["body"])
    assert body["error"] == code and body["detail"]


@pytest.mark.django_db(transaction=True)
async def test_it_serves_the_site_with_the_full_stack(site_memory):
    response = await call("GET", "/")
    assert response["status"] == 302
    headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    assert headers["location"].startswith("/accounts/login/")
    assert headers["x-frame-options"] == "DENY"
    login = await call("GET", "/accounts/login/")
    assert login["status"] == 200
    assert b'name="csrfmiddlewaretoken"' in login["body"]

"""The production path, as docs/deployment.md gives it: ``DJANGO_DEBUG=0``, ``collectstatic``, then
``daphne empathy_site.asgi:application`` (or uvicorn) alone, no proxy in front. The review queue comes
with its CSS and htmx (hashed names, compressed, cached for good) and a staged pattern appears live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from coordination.bench_live import WS_PROBE_JS, SiteServer, log_in
from coordination.servers import SERVERS

from .conftest import PASSWORD, live, stayed_live
from .test_review_flow import stage

HASHED = re.compile(r"/static/(css/site|vendor/htmx\.min|vendor/ws\.min)\.[0-9a-f]{12}\.(css|js)$")


@pytest.fixture(scope="module", params=SERVERS)
def production_site(request, redis_server):
    server = SiteServer(redis_server.url, {"vera": "validator"}, PASSWORD, server=request.param)
    yield server
    server.stop()


def test_the_site_serves_itself_and_the_review_queue_is_live(browser, production_site, memory, contributor, team):
    context = browser.new_context(base_url=production_site.url)
    try:
        context.add_init_script(WS_PROBE_JS)
        page = context.new_page()
        errors = []
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        assets = []
        page.on("response", lambda r: "/static/" in r.url and assets.append(r))
        log_in(page, "vera", PASSWORD)
        page.goto("/patterns/staging/")
        review = live(page)

        # CSS and htmx came from the site itself, under their hashed names
        urls = {a.url.removeprefix(production_site.url) for a in assets if a.status == 200}
        assert {HASHED.match(u)[1] for u in urls if HASHED.match(u)} == {"css/site", "vendor/htmx.min", "vendor/ws.min"}
        assert review.evaluate("window.htmx && window.htmx.version").startswith("2.0")
        assert review.evaluate("[...document.styleSheets].some(s => /site\\.[0-9a-f]{12}\\.css$/.test(s.href) "
                               "&& s.cssRules.length > 10)")
        css = next(u for u in urls if u.startswith("/static/css/site."))
        answer = context.request.get(css, headers={"Accept-Encoding": "gzip"})
        assert answer.status == 200 and "immutable" in answer.headers["cache-control"]
        assert "max-age=315360000" in answer.headers["cache-control"]
        assert answer.headers.get("content-encoding") == "gzip"

        stage(memory, contributor, "served-live", description="Staged while the page is open.", confidence=0.8)
        card = review.locator(f"#staged-list #pattern-{team}--served-live")
        expect(card).to_be_visible()
        expect(card).to_contain_text("Retry with backoff")
        assert stayed_live(review)
        assert errors == []
    finally:
        context.close()
    assert "Traceback" not in production_site.log_tail(100_000)


def test_its_websockets_check_the_origin_and_the_login(browser, production_site):
    """What the consumers' tests check on Channels' test communicator, here on the real server: a
    foreign Origin is refused even with a valid session, no session is refused, and a logged-in
    page of the site's own origin gets its snapshot."""
    context = browser.new_context(base_url=production_site.url)
    try:
        log_in(context.new_page(), "vera", PASSWORD)
        session = next(c["value"] for c in context.cookies() if c["name"] == "sessionid")
    finally:
        context.close()
    url = production_site.url.replace("http://", "ws://") + "/ws/patterns/staging/"
    cookie = {"Cookie": f"sessionid={session}"}

    def refused(**options) -> int:
        with pytest.raises(InvalidStatus) as refusal:
            connect(url, open_timeout=10, **options).close()
        return refusal.value.response.status_code

    assert refused(origin="http://evil.example", additional_headers=cookie) == 403
    assert refused(origin=production_site.url) == 403
    with connect(url, origin=production_site.url, additional_headers=cookie, open_timeout=10) as ws:
        snapshot = ws.recv(timeout=10)
        assert "hx-swap-oob" in snapshot and "staged" in snapshot

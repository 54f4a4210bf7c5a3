"""ASGI entry point, served by uvicorn or daphne (coordination/servers.py; both serve the static files too).

HTTP under ``/api/`` goes first to the hot path (``coordination.hotpath``: claim, complete and lease
heartbeats of callers whose token is cached, answered on the event loop without Django), then to a
Django handler with a lean, natively async middleware stack; the rest of the site gets the full stack
(sessions, CSRF, auth, messages). Why: under ASGI each of Django's classic middlewares costs two thread
hops per request; with the full stack an API call paid about 1.5 ms for them alone. API callers
authenticate with bearer tokens, so they need none of those middlewares. WebSocket routes join here.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "empathy_site.settings")

from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

import django  # noqa: E402

django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from coordination.hotpath import HotPath  # noqa: E402
from coordination.mcp_http import McpEndpoint  # noqa: E402
from coordination.routing import websocket_urlpatterns  # noqa: E402


class ApiASGIHandler(ASGIHandler):
    """Django's ASGI handler with ``settings.API_MIDDLEWARE`` instead of ``settings.MIDDLEWARE``."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


site_app = ASGIHandler()
django_api_app = ApiASGIHandler()
api_app = HotPath(django_api_app)
mcp_app = McpEndpoint(django_api_app)  # /mcp: MCP over streamable HTTP, each tool call sent to the API


async def http_app(scope, receive, send):
    path = scope["path"]
    app = api_app if path.startswith("/api/") else mcp_app if path in ("/mcp", "/mcp/") else site_app
    await app(scope, receive, send)


application = ProtocolTypeRouter({
    "http": http_app,
    # Browsers only: the session cookie says who it is; a foreign Origin is refused before that.
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

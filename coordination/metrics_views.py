"""The metrics page (observers and above) and the Prometheus endpoint: behind a bearer token
(``EMPATHY_METRICS_TOKEN``); without one it is open in development (DEBUG) and refused in production."""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from empathy_os import AccessTier

from . import metrics, metrics_exposition
from .access import tier_required
from .memory import get_memory

#: When set (non-empty), ``/metrics`` requires ``Authorization: Bearer <this value>``.
TOKEN_VARIABLE = "EMPATHY_METRICS_TOKEN"


#: The site's metrics, read when scraped (prometheus_client registry, coordination.metrics_exposition).
REGISTRY = metrics_exposition.site_registry(get_memory)


def scrape_refusal(request) -> HttpResponse | None:
    """None when the scrape may go on. With a token configured the request must carry it as a bearer
    token (401); with none, the endpoint is open in DEBUG and refused (403) in production, saying
    which setting opens it."""
    expected = os.environ.get(TOKEN_VARIABLE, "")
    if not expected:
        if settings.DEBUG:
            return None
        return HttpResponse(f"/metrics is closed: set {TOKEN_VARIABLE} on the site and scrape with "
                            f"'Authorization: Bearer <that token>'\n", status=403, content_type="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
        return None
    response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
@tier_required(AccessTier.OBSERVER)
def dashboard(request):
    """The chapter's metrics with small charts, and the memory's bounded-memory figures."""
    report = metrics.dashboard_report(get_memory())
    return render(request, "coordination/metrics_dashboard.html", {"report": report, "tier": request.tier})


@never_cache
@require_GET
def prometheus(request):
    """Prometheus exposition (text 0.0.4, or OpenMetrics when asked); ``empathy_up 0`` (still 200)
    when the memory does not answer."""
    refused = scrape_refusal(request)
    if refused is not None:
        return refused
    body, content_type = metrics_exposition.exposition(REGISTRY, request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)

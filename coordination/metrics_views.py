"""The metrics page (observers and above) and the Prometheus endpoint (open, or behind a bearer token)."""

from __future__ import annotations

import hmac
import os

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


def scrape_allowed(request) -> bool:
    """No token configured: open. Otherwise the request must carry it as a bearer token."""
    expected = os.environ.get(TOKEN_VARIABLE, "")
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


@require_GET
@tier_required(AccessTier.OBSERVER)
def dashboard(request):
    """The chapter's metrics with small charts, and the memory's bounded-memory figures."""
    report = metrics.dashboard_report(get_memory())
    return render(request, "coordination/metrics_dashboard.html", {"report": report, "tier": request.tier})


@never_cache
@require_GET
def prometheus(request):
    """Prometheus text exposition; ``empathy_up 0`` (still 200) when the memory does not answer."""
    if not scrape_allowed(request):
        response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_exposition.prometheus_text(get_memory()), content_type=metrics_exposition.CONTENT_TYPE)

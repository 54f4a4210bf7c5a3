from django.shortcuts import render
from django.views.decorators.http import require_GET

from empathy_os import MemoryUnavailableError

from .memory import get_memory


@require_GET
def status(request):
    """Which memory the site runs on, with its figures."""
    try:
        stats = get_memory().get_stats()
        error = None
    except MemoryUnavailableError as exc:
        stats, error = None, str(exc)
    return render(request, "coordination/status.html", {"stats": stats, "error": error})

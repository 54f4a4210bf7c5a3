"""The team pages: the list of teams, a team's live dashboard, a task's detail.

Each view parses, authorises (``tier_required``), reads through the library (coordination/dashboard.py)
and renders. The dashboard's partials are the same templates the TeamConsumer sends live.
"""

from django.http import Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from empathy_os import AccessTier, MemoryUnavailableError
from empathy_os.overview import read_overview

from . import dashboard
from .access import tier_required
from .memory import get_memory


def memory_offline(request, exc):
    return render(request, "coordination/memory_offline.html", {"error": str(exc), "tier": request.tier}, status=503)


def reader(request, team_id: str):
    """The person's read-only credentials for ``team_id``; 404 for an id the library would refuse."""
    if not dashboard.is_valid_id(team_id):
        raise Http404("no such team")
    return dashboard.reader_credentials(request.user, team_id)


#: The team list's live partial (``#team-list``), sent by ``TeamListConsumer`` too.
TEAM_LIST_PARTIAL = "coordination/partials/team_list.html"


def team_list_context(memory) -> dict:
    """Every team with its agent and task counts, and the memory's figures, in one read (raises
    ``MemoryUnavailableError``). Synchronous: the consumer calls it in a worker thread."""
    overview = read_overview(memory)
    return {"stats": overview["stats"], "teams": overview["teams"]}


def render_team_list(memory) -> str:
    return render_to_string(TEAM_LIST_PARTIAL, team_list_context(memory))


@require_GET
@tier_required(AccessTier.OBSERVER)
def team_list(request):
    """Every team with its agent and task counts, and which memory the site runs on; kept live by
    ``TeamListConsumer``."""
    try:
        context = team_list_context(get_memory())
    except MemoryUnavailableError as exc:
        return memory_offline(request, exc)
    return render(request, "coordination/team_list.html", {**context, "tier": request.tier})


@require_GET
@tier_required(AccessTier.OBSERVER)
def team_dashboard(request, team_id: str):
    """A team's agents, task board, signals, sessions and counters; kept live by TeamConsumer."""
    credentials = reader(request, team_id)
    try:
        context = dashboard.team_context(get_memory(), credentials)
    except MemoryUnavailableError as exc:
        return memory_offline(request, exc)
    return render(request, "coordination/team_dashboard.html", {**context, "tier": request.tier})


@require_GET
@tier_required(AccessTier.OBSERVER)
def task_detail(request, team_id: str, task_id: str):
    """One task: its fields, context and result as JSON, and its lease history."""
    credentials = reader(request, team_id)
    if not dashboard.is_valid_id(task_id):
        raise Http404("no such task")
    try:
        detail = dashboard.task_detail(get_memory(), credentials, task_id)
    except MemoryUnavailableError as exc:
        return memory_offline(request, exc)
    if detail is None:
        raise Http404("no such task")
    return render(request, "coordination/task_detail.html", {**detail, "team_id": team_id, "tier": request.tier})

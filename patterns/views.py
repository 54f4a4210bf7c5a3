"""The validators' review queue, the pattern library and the decisions audit trail.

Views parse, authorise (``tier_required``), call the library, render. The review queue's partials
(``staged_list.html``, ``review_message.html``) are the same templates :class:`StagingConsumer`
sends live; POST endpoints answer htmx with them (``hx-swap-oob``), errors included (4xx + message).

A decision is refused while another validator holds the pattern's review lock (checked in the
decision's own Lua script, see ``empathy_os.patterns``), and taken exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from coordination.access import credentials_for_user, display_name, human_agent_id, tier_required
from coordination.errors import answer_for
from coordination.memory import get_memory
from empathy_os import (
    AccessDeniedError,
    AccessTier,
    ConflictError,
    EmpathyError,
    MemoryUnavailableError,
    ReviewLock,
    ReviewLockedError,
    StagedPattern,
    get_decision,
    get_review_locks,
    lock_pattern,
    unlock_pattern,
)

from . import library
from .highlight import highlight_code
from .models import LibraryPattern, PatternDecision

APPROVE, REJECT = "approve", "reject"
#: Most patterns one bulk action decides.
BULK_LIMIT = 200
#: Most library patterns one search shows.
LIBRARY_LIMIT = 100
DECISIONS_PER_PAGE = 50


@dataclass
class Card:
    """One staged pattern as a validator sees it."""

    team: str
    pattern: StagedPattern
    lock: ReviewLock | None
    mine: bool
    rediscovers: str | None

    @property
    def confidence_percent(self) -> int:
        return round(self.pattern.confidence * 100)

    @property
    def staged(self) -> datetime | None:
        at = self.pattern.staged_at
        return datetime.fromtimestamp(at, tz=timezone.utc) if at else None

    @property
    def code_html(self):
        return highlight_code(self.pattern.code, self.pattern.context)

    @property
    def context_json(self) -> str:
        return json.dumps(self.pattern.context, indent=2, sort_keys=True, ensure_ascii=False)

    @property
    def session(self):
        context = self.pattern.context
        return context.get("session_id") or context.get("session")

    @property
    def lock_expires(self) -> int:
        """When the lock expires, in epoch seconds (the page hides the badge then)."""
        return int(self.lock.expires_at) if self.lock else 0

    @property
    def holder(self) -> str:
        return display_name(self.lock.holder) if self.lock else ""


def review_queue(user) -> list[Card]:
    """Staged patterns of every team, newest first, with their review locks and rediscoveries.

    Rendered per person ("being reviewed by you"); the page, the POST answers and the consumer use it.
    """
    memory = get_memory()
    me = human_agent_id(user)
    cards = []
    for team in memory.list_teams():
        credentials = credentials_for_user(user, team)
        staged = memory.get_staged_patterns(credentials)
        if not staged:
            continue
        locks = get_review_locks(memory, credentials, [p.pattern_id for p in staged])
        found = library.rediscoveries(team, staged)
        for p in staged:
            lock = locks.get(p.pattern_id)
            cards.append(Card(team, p, lock, lock is not None and lock.holder == me, found.get(p.pattern_id)))
    cards.sort(key=lambda c: c.pattern.staged_at or 0, reverse=True)
    return cards


def render_staged_list(user) -> str:
    """The ``#staged-list`` partial for ``user`` (raises MemoryUnavailableError)."""
    return render_to_string("patterns/partials/staged_list.html", {"cards": review_queue(user)})


def refusal(exc: Exception, credentials=None, pattern_id: str | None = None) -> tuple[int, str]:
    """HTTP status (``coordination.errors``) and what to tell the person, for a decision or lock on
    ``pattern_id`` that the library refused. Agents are named by ``display_name``."""
    status, _ = answer_for(exc)
    if isinstance(exc, ReviewLockedError):
        lock = exc.lock
        return status, f"{lock.pattern_id} is being reviewed by {display_name(lock.holder)}; wait for them to finish"
    if isinstance(exc, ConflictError) and credentials is not None and pattern_id is not None:
        try:
            decided = get_decision(get_memory(), credentials, pattern_id)
        except EmpathyError:
            decided = None
        if decided:
            return status, f"pattern {pattern_id} was already {decided['decision']} by {display_name(decided['decided_by'])}"
    if isinstance(exc, AccessDeniedError):
        return status, "your access tier does not allow this"
    if status == 503:
        return status, f"the memory or the library is unavailable, try again ({exc})"
    return status, str(exc)


REFUSED = (EmpathyError, library.LibraryUnavailableError)


def review_update(request, message: str, level: str = "ok", status: int = 200) -> HttpResponse:
    """The answer to an htmx POST: the message, plus the re-rendered queue (both swapped out of band)."""
    try:
        queue = render_staged_list(request.user)
    except MemoryUnavailableError:
        queue = render_to_string("partials/memory_status.html", {"online": False})
    message_html = render_to_string("patterns/partials/review_message.html", {"message": message, "level": level})
    return HttpResponse(message_html + queue, status=status)


def review_message(message: str, status: int) -> HttpResponse:
    html = render_to_string("patterns/partials/review_message.html", {"message": message, "level": "error"})
    return HttpResponse(html, status=status)


def decide(credentials, pattern_id: str, action: str, note: str) -> None:
    """Approve or reject one pattern as the person of ``credentials`` (raises what the library refuses:
    a review lock held by someone else, a decision already made...). The decision releases the
    person's own lock."""
    memory = get_memory()
    if action == APPROVE:
        library.promote(memory, credentials, pattern_id, note)
    else:
        library.reject(memory, credentials, pattern_id, note)


def decide_and_answer(request, targets, action: str, note: str) -> HttpResponse:
    done, refused = [], []
    for team_id, pattern_id in targets:
        credentials = None
        try:
            credentials = credentials_for_user(request.user, team_id)
            decide(credentials, pattern_id, action, note)
            done.append(pattern_id)
        except REFUSED as exc:
            refused.append(refusal(exc, credentials, pattern_id))
    verb = "Approved" if action == APPROVE else "Rejected"
    parts = [f"{verb} {', '.join(done)}."] if done else []
    parts += [message for _, message in refused]
    if refused and not done:
        return review_update(request, " ".join(parts), "error", refused[0][0])
    return review_update(request, " ".join(parts), "warn" if refused else "ok")


def reason_of(request) -> str:
    return request.POST.get("reason", "").strip()


@require_GET
@tier_required(AccessTier.VALIDATOR)
def staging(request):
    """The review queue: staged patterns of every team, kept live by StagingConsumer."""
    try:
        cards, online, message = review_queue(request.user), True, ""
    except MemoryUnavailableError:
        cards, online, message = [], False, "The memory is offline: staged patterns appear when it is back."
    return render(request, "patterns/staging.html", {"cards": cards, "online": online, "message": message,
                                                     "level": "error", "tier": request.tier})


@require_POST
@tier_required(AccessTier.VALIDATOR)
def approve(request, team_id: str, pattern_id: str):
    return decide_and_answer(request, [(team_id, pattern_id)], APPROVE, request.POST.get("note", "").strip())


@require_POST
@tier_required(AccessTier.VALIDATOR)
def reject(request, team_id: str, pattern_id: str):
    reason = reason_of(request)
    if not reason:
        return review_message("Give a reason to reject a pattern.", 400)
    return decide_and_answer(request, [(team_id, pattern_id)], REJECT, reason)


@require_POST
@tier_required(AccessTier.VALIDATOR)
def bulk(request):
    """Approve or reject the selected patterns (``selected`` = ``<team>:<pattern>``, repeated)."""
    action = request.POST.get("action")
    selected = request.POST.getlist("selected")
    if action not in (APPROVE, REJECT):
        return review_message("Choose approve or reject.", 400)
    if not selected:
        return review_message("Select at least one pattern.", 400)
    if len(selected) > BULK_LIMIT:
        return review_message(f"Select at most {BULK_LIMIT} patterns at a time.", 400)
    targets = [value.partition(":")[::2] for value in selected]
    if any(not team or not pattern for team, pattern in targets):
        return review_message("Selected patterns are given as <team>:<pattern id>.", 400)
    reason = reason_of(request)
    if action == REJECT and not reason:
        return review_message("Give a reason to reject a pattern.", 400)
    return decide_and_answer(request, list(dict.fromkeys(targets)), action, reason)


def lock_answer(request, change, team_id: str, pattern_id: str) -> HttpResponse:
    """Take or release a review lock as the person: 204, or the library's refusal as a message."""
    credentials = None
    try:
        credentials = credentials_for_user(request.user, team_id)
        change(get_memory(), credentials, pattern_id)
    except REFUSED as exc:
        status, message = refusal(exc, credentials, pattern_id)
        return review_message(message, status)
    return HttpResponse(status=204)


@require_POST
@tier_required(AccessTier.VALIDATOR)
def lock(request, team_id: str, pattern_id: str):
    """Take (or renew) the review lock: 204, or 409 with who holds it."""
    return lock_answer(request, lock_pattern, team_id, pattern_id)


@require_POST
@tier_required(AccessTier.VALIDATOR)
def unlock(request, team_id: str, pattern_id: str):
    """Release the caller's review lock (204 whether or not it held it: only the holder releases)."""
    return lock_answer(request, unlock_pattern, team_id, pattern_id)


def memory_online() -> bool:
    try:
        return get_memory().ping()
    except EmpathyError:
        return False


@require_GET
@tier_required(AccessTier.OBSERVER)
def library_page(request):
    """Approved patterns of every team, searched by text (``q``) and type; look-ups by people are not
    counted toward reuse (only agents' are)."""
    q, pattern_type = request.GET.get("q", "").strip()[:200], request.GET.get("type", "").strip()[:128]
    found = library.search(None, q, pattern_type, LIBRARY_LIMIT + 1, count=False)  # one query, every team
    patterns = found[:LIBRARY_LIMIT]
    for p in patterns:
        p.code_html = highlight_code(p.code, p.context)
    types = LibraryPattern.objects.order_by("pattern_type").values_list("pattern_type", flat=True).distinct()
    return render(request, "patterns/library.html", {
        "patterns": patterns, "q": q, "type": pattern_type, "types": types, "more": len(found) > LIBRARY_LIMIT,
        "online": memory_online(), "tier": request.tier})


@require_GET
@tier_required(AccessTier.OBSERVER)
def decisions(request):
    """Every validator decision, newest first: who, when, what, why."""
    page = Paginator(PatternDecision.objects.order_by("-decided_at", "-pk"), DECISIONS_PER_PAGE).get_page(
        request.GET.get("page"))
    return render(request, "patterns/decisions.html", {"page": page, "online": memory_online(), "tier": request.tier})

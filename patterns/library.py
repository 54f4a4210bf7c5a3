"""Moving decided patterns into the durable library, and looking patterns up.

The race being avoided: two validators deciding the same pattern. Redis takes exactly one
decision (``promote_pattern`` / ``reject_pattern`` are atomic); the database's unique constraint
on (team, pattern) is a second guard. If the database write fails after Redis took the pattern
out of staging, the pattern is put back into staging: nothing is lost.
"""

from __future__ import annotations

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q

from empathy_os import ConflictError, InvalidInputError, StagedPattern, restore_staged_pattern

from .models import LibraryLookup, LibraryPattern, PatternDecision


class LibraryUnavailableError(Exception):
    """The database did not take the decision; the pattern is back in staging."""


def _replace_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _json_map(value, fn):
    """``value`` (JSON data) with ``fn`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(k): _json_map(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_map(v, fn) for v in value]
    return value


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _record(memory, credentials, pattern: StagedPattern, decision: str, note: str):
    """Write the decision (and, for a promotion, the library pattern) in one transaction.

    Text with NUL characters: PostgreSQL stores none (in text or jsonb), so the same rule holds on
    every database: such a pattern is not promoted (it goes back to staging, with a clear error), and
    the audit copy of a rejected one, like a note, has each NUL replaced by U+FFFD (a validator can
    always reject)."""
    team = credentials.team_id
    snapshot, note = pattern.to_dict(), _replace_nul(note)
    if _has_nul(snapshot):
        if decision == PatternDecision.PROMOTED:
            restore_staged_pattern(memory, credentials, pattern)
            raise InvalidInputError(f"pattern {pattern.pattern_id} contains NUL characters, which the library "
                                    "does not store; reject it, or stage it again without them")
        snapshot = _json_map(snapshot, _replace_nul)
    try:
        with transaction.atomic():
            PatternDecision.objects.create(team_id=team, pattern_id=pattern.pattern_id, decision=decision,
                                           decided_by=credentials.agent_id, note=note, pattern=snapshot)
            if decision == PatternDecision.REJECTED:
                return None
            return LibraryPattern.objects.create(
                team_id=team, pattern_id=pattern.pattern_id, pattern_type=pattern.pattern_type, name=pattern.name,
                description=pattern.description, code=pattern.code or "", confidence=pattern.confidence,
                context=pattern.context, discovered_by=pattern.agent_id, content_hash=pattern.content_hash,
                promoted_by=credentials.agent_id)
    except IntegrityError:
        restore_staged_pattern(memory, credentials, pattern)
        raise ConflictError(f"pattern {pattern.pattern_id} was already decided in the library; "
                            "stage it under a new pattern_id") from None
    except DatabaseError as exc:
        restore_staged_pattern(memory, credentials, pattern)
        raise LibraryUnavailableError(f"the pattern library did not record the decision ({exc}); "
                                      "the pattern is back in staging, try again") from None


def promote(memory, credentials, pattern_id: str, note: str = "") -> LibraryPattern:
    """Promote a staged pattern into the library (validators only, exactly once)."""
    pattern = memory.promote_pattern(credentials, pattern_id, note)
    return _record(memory, credentials, pattern, PatternDecision.PROMOTED, note)


def reject(memory, credentials, pattern_id: str, reason: str) -> PatternDecision:
    """Reject a staged pattern with a reason (validators only, exactly once)."""
    pattern = memory.reject_pattern(credentials, pattern_id, reason)
    _record(memory, credentials, pattern, PatternDecision.REJECTED, reason)
    return PatternDecision.objects.get(team_id=credentials.team_id, pattern_id=pattern_id)


def rediscoveries(team_id: str, patterns) -> dict[str, str]:
    """Map staged pattern ids to the library pattern each one rediscovers (same content)."""
    by_hash = {p.content_hash: p.pattern_id for p in patterns}
    found = LibraryPattern.objects.filter(team_id=team_id, content_hash__in=by_hash).values_list(
        "content_hash", "pattern_id")
    return {by_hash[h]: library_id for h, library_id in found}


def search(team_id: str | None, q: str = "", pattern_type: str = "", limit: int = 50, count: bool = True):
    """Library patterns matching ``q`` (name, description, code) and ``pattern_type``, newest first:
    of one team, or of every team (``team_id`` None; one query).

    With ``count``, the look-up and each pattern returned are counted (for one team), for the reuse metric.
    """
    if team_id is None and count:
        raise ValueError("a look-up is counted for one team: give team_id, or count=False")
    found = LibraryPattern.objects.all() if team_id is None else LibraryPattern.objects.filter(team_id=team_id)
    if "\x00" in q + pattern_type:
        found = found.none()  # the library holds no NUL (see _record), and PostgreSQL refuses it in a query
    if q:
        found = found.filter(Q(name__icontains=q) | Q(description__icontains=q) | Q(code__icontains=q))
    if pattern_type:
        found = found.filter(pattern_type=pattern_type)
    results = list(found[:limit])
    if count:
        with transaction.atomic():
            LibraryPattern.objects.filter(pk__in=[p.pk for p in results]).update(reuse_count=F("reuse_count") + 1)
            LibraryLookup.objects.get_or_create(team_id=team_id)
            LibraryLookup.objects.filter(team_id=team_id).update(
                lookups=F("lookups") + 1, hits=F("hits") + (1 if results else 0))
        for p in results:
            p.reuse_count += 1
    return results


def reuse_rate(team_id: str) -> float | None:
    """Share of library look-ups that found a pattern (None before the first look-up)."""
    row = LibraryLookup.objects.filter(team_id=team_id).first()
    return row.hits / row.lookups if row and row.lookups else None

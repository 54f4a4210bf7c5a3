"""Who a person is allowed to be: their tier comes from their group, on the server.

One helper per kind of check, used on the first line of each view and in each consumer.
"""

from __future__ import annotations

import re
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from empathy_os import AccessTier, AgentCredentials

#: Group name -> tier (the groups are created by a migration).
GROUP_TIERS = {"Observer": AccessTier.OBSERVER, "Contributor": AccessTier.CONTRIBUTOR,
               "Validator": AccessTier.VALIDATOR, "Steward": AccessTier.STEWARD}


def user_tier(user) -> AccessTier | None:
    """The highest tier of the user's groups (superusers are stewards); None for anonymous users and
    users in no tier group."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return AccessTier.STEWARD
    names = getattr(user, "_tier_groups", None)
    if names is None:
        names = user._tier_groups = set(user.groups.values_list("name", flat=True))
    tiers = [tier for name, tier in GROUP_TIERS.items() if name in names]
    return max(tiers) if tiers else None


#: What a person's agent id starts with (``human_agent_id``); ``display_name`` shows it without.
HUMAN_PREFIX = "human-"


def human_agent_id(user) -> str:
    """The id a person acts under in the library (usernames may hold characters ids may not)."""
    return HUMAN_PREFIX + re.sub(r"[^A-Za-z0-9_.\-]", "_", user.get_username())[:120]


def display_name(agent_id: str) -> str:
    """How pages name an agent: a person by username, any other agent by its id."""
    return agent_id.removeprefix(HUMAN_PREFIX)


def credentials_for_user(user, team_id: str) -> AgentCredentials:
    tier = user_tier(user)
    if tier is None:
        raise PermissionDenied("your account has no access tier")
    return AgentCredentials(human_agent_id(user), tier, team_id)


def tier_required(tier: AccessTier):
    """View decorator: log in first; then refuse (403) a user below ``tier``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            current = user_tier(request.user)
            if current is None or current < tier:
                raise PermissionDenied(f"this page needs the {tier} tier")
            request.tier = current
            return view(request, *args, **kwargs)

        return wrapped

    return decorator

"""``{{ agent_id|display_name }}``: how pages name an agent (a person by username; see coordination.access)."""

from django import template

from coordination.access import display_name as _display_name

register = template.Library()


@register.filter
def display_name(agent_id) -> str:
    return _display_name(str(agent_id or ""))

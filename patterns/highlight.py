"""Server-side syntax highlighting of pattern code with Pygments.

Pygments escapes every character of the code it formats (``<``, ``>``, ``&``, quotes), so its
output, and only its output, is marked safe for the templates. The language comes from the
pattern's context (``language`` or ``lang``, else the extension of ``file``/``filename``/``path``),
else Python: the agents review Python code, and Pygments' guessing is wrong on short snippets.
"""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

_formatter = HtmlFormatter(nowrap=True)


def _lexer(context: dict):
    language = context.get("language") or context.get("lang")
    if isinstance(language, str) and language:
        try:
            return get_lexer_by_name(language[:40], stripnl=False)
        except ClassNotFound:
            pass
    for field in ("file", "filename", "path"):
        name = context.get(field)
        if isinstance(name, str) and name:
            try:
                return get_lexer_for_filename(name[-200:], stripnl=False)
            except ClassNotFound:
                pass
    return PythonLexer(stripnl=False)


def highlight_code(code: str | None, context: dict | None = None) -> SafeString:
    """The code as highlighted, escaped HTML for a ``<pre class="code">`` ('' for no code)."""
    if not code:
        return mark_safe("")
    return mark_safe(highlight(code, _lexer(context or {}), _formatter))  # Pygments escapes the code

"""The one table from the library's refusals to HTTP answers: status and error code.

The library's rows are ``empathy_os.exceptions.HTTP_ANSWERS`` (the HTTP client reads them backwards).
The agent API (``coordination.api``) answers each with ``{"error": code, "detail": message}``; the
review views (``patterns.views``) say it to a person. An exception takes the row of its most specific
class (a ``StagingFullError`` is a ``ConflictError``, but answers ``staging_full``).
"""

from __future__ import annotations

from empathy_os.exceptions import HTTP_ANSWERS
from patterns.library import LibraryUnavailableError

#: (exception class, HTTP status, error code): the library's answers, and the pattern library's.
ERROR_TABLE = (
    *HTTP_ANSWERS,
    (LibraryUnavailableError, 503, "library_unavailable"),
)
#: Seconds to wait before trying again, by status (``Retry-After``).
RETRY_AFTER = {503: 1}
#: What an exception the table does not list answers (a library error nobody expected).
UNLISTED = (503, "unavailable")


def answer_for(exc: BaseException) -> tuple[int, str]:
    """``(status, code)`` of ``exc``: the row of the first class in its MRO that the table lists."""
    rows = {cls: (status, code) for cls, status, code in ERROR_TABLE}
    for cls in type(exc).__mro__:
        if cls in rows:
            return rows[cls]
    return UNLISTED

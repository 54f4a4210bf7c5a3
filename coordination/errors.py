"""The one table from the library's refusals to HTTP answers: status and error code.

The agent API (``coordination.api``) answers each with ``{"error": code, "detail": message}``; the
review views (``patterns.views``) say it to a person. An exception takes the row of its most specific
class (a ``StagingFullError`` is a ``ConflictError``, but answers ``staging_full``).
"""

from __future__ import annotations

from empathy_os import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    MemoryUnavailableError,
    NotFoundError,
    StagingFullError,
    ValueTooLargeError,
)
from patterns.library import LibraryUnavailableError

#: (exception class, HTTP status, error code).
ERROR_TABLE = (
    (ValueTooLargeError, 413, "too_large"),
    (InvalidInputError, 400, "invalid_input"),
    (AccessDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (StagingFullError, 409, "staging_full"),
    (ConflictError, 409, "conflict"),
    (MemoryUnavailableError, 503, "memory_unavailable"),
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

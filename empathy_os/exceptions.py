"""Every exception the library raises. All derive from :class:`EmpathyError`.

Bad input raises subclasses of ``ValueError``; a tier that is too low raises a subclass of
``PermissionError``; so callers can catch either the library's or Python's own families.
"""


class EmpathyError(Exception):
    """Base class of the library's errors."""


class InvalidInputError(EmpathyError, ValueError):
    """An id, value or argument is malformed; the message says what to fix."""


class ValueTooLargeError(InvalidInputError):
    """A JSON value is larger than the configured limit (``max_value_bytes``)."""


class AccessDeniedError(EmpathyError, PermissionError):
    """The caller's access tier (or identity) does not allow the operation."""


class NotFoundError(EmpathyError, LookupError):
    """The task, pattern, session or conflict does not exist (or has expired)."""


class ConflictError(EmpathyError):
    """The operation conflicts with the current state (already decided, already completed...)."""


class StagingFullError(ConflictError):
    """The team already has ``staged_pattern_limit`` patterns staged: a new one is refused (never
    dropped silently) until validators promote or reject some."""


class LeaseError(ConflictError):
    """The caller does not hold the task's lease, or the lease has expired (fencing)."""


class MemoryUnavailableError(EmpathyError, ConnectionError):
    """Redis did not answer (down, unreachable or timed out). Retry later."""


#: How the HTTP API answers each refusal: (exception, HTTP status, error code), most specific class
#: first (a StagingFullError is a ConflictError, but answers "staging_full"). The site extends it
#: (``coordination/errors.py``); the HTTP client (``empathy_os.client``) reads it backwards.
HTTP_ANSWERS = (
    (ValueTooLargeError, 413, "too_large"),
    (InvalidInputError, 400, "invalid_input"),
    (AccessDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (StagingFullError, 409, "staging_full"),
    (LeaseError, 409, "lease"),
    (ConflictError, 409, "conflict"),
    (MemoryUnavailableError, 503, "memory_unavailable"),
)

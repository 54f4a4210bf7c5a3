"""The API's own middleware: every ``/api/`` answer is JSON (Django's 404/405/500 pages become
``{"error", "detail"}``) and carries the security headers; the site's pages get a Content-Security-Policy
(Django's own middlewares set their other headers). A database that does not answer is a 503 (JSON
for the API, a short page for people) instead of a 500 with a traceback. Natively async: no thread hops."""


import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger("coordination.api")

CODES = {400: "invalid_input", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
         500: "server_error"}


#: The body of an API 500 (the error itself goes to the log, never to the caller).
SERVER_ERROR = {"error": "server_error", "detail": "internal error; it has been logged"}

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


#: The pages load only their own scripts (htmx, its ws extension, static/js) and talk only to their own
#: origin (htmx requests and the WebSocket: 'self' covers ws:/wss: on the same host). Inline styles
#: stay allowed: htmx inserts its indicator styles as a <style> element. No inline script runs.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def _jsonify(request, response):
    if not request.path.startswith("/api/"):
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.status_code < 400:
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    status = response.status_code
    detail = {404: f"no endpoint at {request.path}", 405: f"{request.method} is not allowed on {request.path}",
              500: "internal error; it has been logged"}.get(status, response.reason_phrase)
    fixed = JsonResponse({"error": CODES.get(status, "error"), "detail": detail}, status=status,
                         headers=SECURITY_HEADERS)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            fixed[header] = response[header]
    return fixed


class ApiJsonErrorsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return _jsonify(request, self.get_response(request))

    async def __acall__(self, request):
        return _jsonify(request, await self.get_response(request))

    def process_exception(self, request, exception):
        if isinstance(exception, (Http404, PermissionDenied, BadRequest, SuspiciousOperation)):
            return None  # Django answers these with 404/403/400, which _jsonify turns into JSON
        if isinstance(exception, DATABASE_DOWN):
            return database_unavailable(request, exception)
        if request.path.startswith("/api/"):
            log.exception("unhandled error on %s %s", request.method, request.path)
            return JsonResponse(SERVER_ERROR, status=500)
        return None





#: What the database driver raises when the database does not answer (connection refused or lost,
#: a timeout, a server shutting down; SQLite: the file cannot be opened or stays locked).
DATABASE_DOWN = (OperationalError, InterfaceError)


def database_unavailable(request, exc):
    """503 with ``Retry-After``: JSON for the API, a page of its own for people (rendered without the
    request: the page's usual context, the logged-in user, would ask the database again)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "database_unavailable",
                             "detail": "the database (people, tokens, the pattern library) did not answer; "
                                       "try again shortly"},
                            status=503, headers={**SECURITY_HEADERS, "Retry-After": "1"})
    page = render_to_string("database_offline.html")
    return HttpResponse(page, status=503, headers={"Retry-After": "5"})

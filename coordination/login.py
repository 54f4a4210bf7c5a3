"""Logging in, with guessing rate-limited like agent tokens.

Failed logins count per client address (``FailureLimiter`` "login", in Redis, shared by every server
process): past ``EMPATHY_AUTH_FAILURE_LIMIT`` failures within ``EMPATHY_AUTH_FAILURE_WINDOW``
seconds, the address gets 429 with ``Retry-After``, right password or not, until the window ends.
If Redis cannot count a failure, the attempt is refused (503) rather than left uncounted.
"""

from __future__ import annotations

from django.contrib.auth.views import LoginView

from empathy_os import MemoryUnavailableError
from empathy_os.ratelimit import FailureLimiter, auth_failure_limiter

from .memory import get_memory


def login_limiter(memory) -> FailureLimiter:
    return auth_failure_limiter(memory, "login")


class RateLimitedLoginView(LoginView):
    def post(self, request, *args, **kwargs):
        wait = login_limiter(get_memory()).retry_after(self.client())
        if wait:
            return self.refused(f"Too many failed logins from your address: try again in {wait} s.", 429, wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        try:
            wait = login_limiter(get_memory()).record_failure(self.client())
        except MemoryUnavailableError:
            return self.refused("The memory is offline, so failed logins cannot be counted: try again shortly.",
                                503, 5)
        if wait:
            return self.refused(f"Too many failed logins from your address: try again in {wait} s.", 429, wait)
        return super().form_invalid(form)

    def client(self) -> str:
        return self.request.META.get("REMOTE_ADDR") or "unknown"

    def refused(self, message: str, status: int, retry_after: int):
        response = self.render_to_response(self.get_context_data(refusal=message), status=status)
        response["Retry-After"] = str(retry_after)
        return response

"""Counting a client's failed attempts (bad tokens) across every server process, in Redis.

A fixed window per client: the first failure starts it (``SET NX EX``), each failure counts
(``INCR``), all in one MULTI/EXEC. Past the limit the client is refused until the window ends.
A process remembers the clients it refused until their windows end, so neither a good request nor
a refused one costs a round trip: only failures do. With several processes a client may get one
more failure counted per process before every process refuses it; the limit stays a limit.
"""

from __future__ import annotations

import math
import threading
import time
import weakref

from .keys import failures_key, validate_id


class FailureLimiter:
    """At most ``limit`` failures of ``what`` per client within ``window`` seconds."""

    def __init__(self, memory, what: str, limit: int, window: float):
        self.memory = memory
        self.what = validate_id(what, "what")
        self.limit = limit
        self.window = window
        self._refused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: it may now). No round trip."""
        until = self._refused_until.get(client)
        if until is None:
            return 0
        left = until - time.monotonic()
        if left <= 0:
            with self._lock:
                self._refused_until.pop(client, None)
            return 0
        return math.ceil(left)

    def record_failure(self, client: str) -> int:
        """Count one failure of ``client``; returns the seconds it must now wait (0 while under the limit)."""
        key = failures_key(self.memory.config.key_prefix, self.what, client)
        pipe = self.memory.client.pipeline(transaction=True)
        pipe.set(key, 0, ex=max(1, math.ceil(self.window)), nx=True).incr(key).ttl(key)
        _, count, ttl = self.memory.read(pipe.execute)
        if count <= self.limit:
            return 0
        wait = ttl if ttl and ttl > 0 else max(1, math.ceil(self.window))
        with self._lock:
            if len(self._refused_until) > 10_000:  # many clients refused at once: keep only live entries
                now = time.monotonic()
                self._refused_until = {c: t for c, t in self._refused_until.items() if t > now}
            self._refused_until[client] = time.monotonic() + wait
        return wait


_auth_limiters: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def auth_failure_limiter(memory, what: str) -> FailureLimiter:
    """The limiter of ``what`` failures ("token", "login") of ``memory``, with the config's
    ``auth_failure_limit`` and ``auth_failure_window``: one per memory and kind, so every request of a
    process shares its counts (and each test's fresh memory starts clean)."""
    limiters = _auth_limiters.setdefault(memory, {})
    limiter = limiters.get(what)
    if limiter is None:
        config = memory.config
        limiter = limiters[what] = FailureLimiter(memory, what, config.auth_failure_limit, config.auth_failure_window)
    return limiter

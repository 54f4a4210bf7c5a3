"""The site's one handle on the short-term memory, found once per process."""

import threading
from contextlib import contextmanager

from empathy_os import get_redis_memory

_memory = None
_lock = threading.Lock()


def get_memory():
    """The memory this process uses (REDIS_URL -> localhost:6379 -> mock; see empathy_os). Never a
    client of another site, whatever EMPATHY_URL says: the site is where agents' clients arrive."""
    global _memory
    if _memory is None:
        with _lock:
            if _memory is None:
                _memory = get_redis_memory(remote=False)
    return _memory


def set_memory(memory) -> None:
    """Use ``memory`` from now on (tests; or a process that built its own)."""
    global _memory
    _memory = memory


@contextmanager
def memory_in_use(memory):
    """Use ``memory`` within the block, then the one used before (tests, tools)."""
    previous = _memory
    set_memory(memory)
    try:
        yield memory
    finally:
        set_memory(previous)

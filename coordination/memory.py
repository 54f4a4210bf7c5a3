"""The site's one handle on the short-term memory, found once per process."""

from functools import lru_cache

from empathy_os import get_redis_memory


@lru_cache(maxsize=1)
def get_memory():
    """The memory this process uses (REDIS_URL -> localhost:6379 -> mock; see empathy_os)."""
    return get_redis_memory()

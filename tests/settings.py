"""The site's settings for the test suite: mock mode, so that nothing in the tests looks for the
machine's Redis on port 6379.

Settings are read once, when pytest-django starts (before any conftest.py runs), and
``empathy_site.settings`` picks the memory's Redis, and the channel layer's, from the environment at
that moment: localhost:6379 whenever a Redis answers there. Tests give the site their own memory
(``coordination.memory.memory_in_use``) and drive the in-memory channel layer; processes they start
get their Redis URL explicitly.
"""

import os

os.environ["EMPATHY_REDIS_MOCK"] = "1"

from empathy_site.settings import *  # noqa: E402,F403

# Processes the tests start (servers, workers, examples) run the real settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "empathy_site.settings"

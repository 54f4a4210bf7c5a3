"""The site's settings for the test suite: mock mode, so that nothing in the tests looks for the
machine's Redis on port 6379, and a database of the tests' own.

Settings are read once, when pytest-django starts (before any conftest.py runs), and
``empathy_site.settings`` picks the memory's Redis, and the channel layer's, from the environment at
that moment: localhost:6379 whenever a Redis answers there. Tests give the site their own memory
(``coordination.memory.memory_in_use``) and drive the in-memory channel layer; processes they start
get their Redis URL explicitly.

The database: SQLite (pytest-django makes a throwaway test database), or, with
``EMPATHY_TEST_DATABASE=postgresql``, a private PostgreSQL that ``tests/conftest.py`` starts for the
session (``tests.support.PostgresServer``); it fills in the socket directory and port below. That
second run takes only the tests that use the database (``./setup.sh test`` runs both). A
``DATABASE_URL`` of the environment is never used: processes the tests start get SQLite files of
their own.
"""

import os
import tempfile

os.environ["EMPATHY_REDIS_MOCK"] = "1"
os.environ.pop("DATABASE_URL", None)

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from empathy_site.settings import *  # noqa: E402,F403

#: "sqlite" (default) or "postgresql": the database engine the test session runs on.
EMPATHY_TEST_DATABASE = os.environ.get("EMPATHY_TEST_DATABASE", "").strip().lower() or "sqlite"
if EMPATHY_TEST_DATABASE == "postgresql":
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "empathy", "USER": "empathy",
                             "PASSWORD": "", "HOST": "set by tests/conftest.py", "PORT": "",
                             "OPTIONS": {"connect_timeout": 5}}}
elif EMPATHY_TEST_DATABASE == "sqlite":
    # A file, as in production (pytest-django's default is an in-memory database, whose shared cache
    # refuses a second writer at once instead of making it wait): two connections race as they would
    # on the real site. One file per test process, removed by pytest-django at the end.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"empathy-test-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    raise ImproperlyConfigured(f"EMPATHY_TEST_DATABASE={EMPATHY_TEST_DATABASE!r}: use sqlite or postgresql")

# Static files: the tests render pages without running collectstatic (pytest-django turns DEBUG off,
# so the manifest storage of production would refuse every {% static %}); the browser test of the
# production path runs collectstatic and the real storage.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
SERVESTATIC_USE_FINDERS = True

# Processes the tests start (servers, workers, examples) run the real settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "empathy_site.settings"

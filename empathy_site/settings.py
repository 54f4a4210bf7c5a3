"""Settings, all read from environment variables (every one is listed in docs/deployment.md).

Development defaults run out of the box: DEBUG on, a throwaway secret key, SQLite, and the memory
found by ``empathy_os.get_redis_memory`` (REDIS_URL -> localhost:6379 -> in-process mock).
"""

from pathlib import Path
import os

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=None):
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return default
    return value


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_list(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me" if DEBUG else None)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required when DJANGO_DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "channels",
    "coordination",
    "patterns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files, served by every site process itself (daphne or uvicorn alone is a working site).
    "servestatic.middleware.ServeStaticMiddleware",
    "coordination.middleware.ApiJsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

#: The API's middleware (see empathy_site/asgi.py): natively async, so no thread hops.
API_MIDDLEWARE = ["coordination.middleware.ApiJsonErrorsMiddleware"]

ROOT_URLCONF = "empathy_site.urls"
ASGI_APPLICATION = "empathy_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

def database_from_url(url: str) -> dict:
    """``DATABASES["default"]`` from a ``DATABASE_URL`` (PostgreSQL, or SQLite), parsed by dj-database-url.

    Connections are not kept between requests (``CONN_MAX_AGE`` 0): under ASGI each request's ORM
    calls run in threads of their own, and Django closes a request's connection when it ends. A
    connection that broke (the database restarted) is therefore never reused."""
    import dj_database_url

    try:
        parsed = dj_database_url.parse(url, conn_max_age=0)
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    if parsed["ENGINE"] not in SUPPORTED_DATABASES:
        raise ImproperlyConfigured(f"DATABASE_URL names {parsed['ENGINE']}: use postgres://user:password@host:5432/name "
                                   "(or sqlite:////path/to/db.sqlite3)")
    if parsed["ENGINE"] == "django.db.backends.postgresql" and not parsed.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL names no database: postgres://user:password@host:5432/NAME")
    # A database that does not answer is an error within seconds, not a request hanging for minutes.
    parsed.setdefault("OPTIONS", {})
    if parsed["ENGINE"] == "django.db.backends.postgresql":
        parsed["OPTIONS"].setdefault("connect_timeout", 5)
    return parsed


SUPPORTED_DATABASES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")

#: Where the durable data is: DATABASE_URL (PostgreSQL: several hosts share it), else SQLite at
#: EMPATHY_DB_PATH (one host only).
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("EMPATHY_DB_PATH", str(BASE_DIR / "var" / "db.sqlite3")),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
#: Where ``manage.py collectstatic`` puts the files the site serves when DEBUG is off.
STATIC_ROOT = Path(env_str("EMPATHY_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
# ServeStatic serves them from each site process (its middleware, above): from static/ as they are in
# DEBUG; with DEBUG off, the files collectstatic wrote, under hashed names (cached for ten years,
# "immutable") and compressed (gzip, chosen by Accept-Encoding).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

#: Request bodies above this are refused with 413 (values are limited to 1 MiB by the library).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
#: Threads that serve signal long-polls (GET /api/v1/signals?wait=...).
EMPATHY_LONG_POLL_THREADS = 64

# Channel layer: channels-redis on the same Redis as the memory; in-memory in mock mode (then the
# relay, the consumers and the demo all run in the one server process).
from empathy_os.connection import is_cluster_url  # noqa: E402
from empathy_os.redis_memory import resolve_redis_url  # noqa: E402

EMPATHY_REDIS_URL = resolve_redis_url()
_CLUSTER = bool(EMPATHY_REDIS_URL) and is_cluster_url(EMPATHY_REDIS_URL)
#: The channel layer's Redis. channels-redis cannot use a Redis Cluster: with a cluster memory, name a
#: plain Redis here, or every server process keeps its dashboards to itself (in-memory layer).
EMPATHY_CHANNELS_URL = env_str("EMPATHY_CHANNELS_URL", "") or (None if _CLUSTER else EMPATHY_REDIS_URL)
if EMPATHY_CHANNELS_URL:
    # redis-py 8 reads with a 5 s socket timeout by default: exactly channels-redis's blocking
    # BZPOPMIN (brpop_timeout = 5 s), so an idle WebSocket would die with a TimeoutError. Reads may
    # take up to twice that; a dead Redis is still noticed.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [{"address": EMPATHY_CHANNELS_URL, "socket_timeout": 10,
                                                        "socket_connect_timeout": 2}],
                                             "prefix": "empathy-channels"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

#: Run the event relay inside each server process (off when `manage.py relay_events` runs apart).
EMPATHY_EMBEDDED_RELAY = env_bool("EMPATHY_EMBEDDED_RELAY", True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"empathy_os": {"handlers": ["console"], "level": "INFO"}},
}

"""``DATABASE_URL`` selects the database (dj-database-url parses it); without it, SQLite at
``EMPATHY_DB_PATH``. A real site process on the session's private PostgreSQL: migrations, people and
tokens land there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured

from empathy_site.settings import database_from_url

ROOT = Path(__file__).resolve().parents[2]


def test_it_parses_a_postgres_url_into_django_settings():
    parsed = database_from_url("postgres://empathy:s%40cret@db.internal:6543/empathy")
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"], parsed["NAME"]) == (
        "empathy", "s@cret", "db.internal", 6543, "empathy")
    assert parsed["CONN_MAX_AGE"] == 0 and parsed["OPTIONS"]["connect_timeout"] == 5


def test_it_takes_a_unix_socket_directory_as_host():
    parsed = database_from_url("postgresql://empathy@%2Fvar%2Frun%2Fpostgresql/empathy")
    assert parsed["HOST"] == "/var/run/postgresql" and parsed["NAME"] == "empathy"


@pytest.mark.parametrize("url, message", [
    ("mysql://u:p@h/db", "use postgres://"),
    ("nonsense://x", "not a database URL"),
    ("postgres://u:p@h:5432/", "names no database"),
])
def test_it_refuses_what_it_cannot_run_with_a_clear_error(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        database_from_url(url)


def settings_in_a_process(**env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMPATHY_DB_PATH")}
    environment.update(env, DJANGO_SETTINGS_MODULE="empathy_site.settings", EMPATHY_REDIS_MOCK="1")
    done = subprocess.run([sys.executable, "-c", "from django.conf import settings; d = settings.DATABASES['default'];"
                           "print(d['ENGINE'], d['NAME'])"], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=60)
    return done.stdout.strip() or done.stderr


def test_without_database_url_it_is_sqlite_at_empathy_db_path(tmp_path):
    assert settings_in_a_process(EMPATHY_DB_PATH=str(tmp_path / "x.sqlite3")) == (
        f"django.db.backends.sqlite3 {tmp_path / 'x.sqlite3'}")
    assert settings_in_a_process(DATABASE_URL="postgres://u@db/empathy") == "django.db.backends.postgresql empathy"
    assert "ImproperlyConfigured: DATABASE_URL names django.db.backends.mysql" in settings_in_a_process(
        DATABASE_URL="mysql://u@db/empathy")


def test_a_site_process_on_database_url_migrates_and_stores_people_and_tokens_there(postgres_server, tmp_path):
    url = postgres_server.create_database("site_on_url")
    env = {k: v for k, v in os.environ.items() if k != "EMPATHY_DB_PATH"}
    env.update(DATABASE_URL=url, EMPATHY_REDIS_MOCK="1", DJANGO_SETTINGS_MODULE="empathy_site.settings",
               EMPATHY_DB_PATH=str(tmp_path / "never.sqlite3"))

    def manage(*args, stdin=None):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    manage("migrate", "--no-input", "-v", "0")
    manage("create_user", "lee", "--tier", "steward", "--password-stdin", stdin="a-long-password-9\n")
    manage("create_agent_token", "scout", "--team", "review_team", "--tier", "contributor")
    with psycopg.connect(host=postgres_server.host, port=postgres_server.port, user=postgres_server.USER,
                         dbname="site_on_url") as conn:
        assert conn.execute("SELECT username FROM auth_user").fetchall() == [("lee",)]
        assert conn.execute("SELECT agent_id, team_id FROM coordination_agenttoken").fetchall() == [
            ("scout", "review_team")]
        assert conn.execute("SELECT count(*) FROM auth_group").fetchone()[0] == 4  # the tier groups
    assert not (tmp_path / "never.sqlite3").exists()

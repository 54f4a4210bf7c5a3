"""``manage.py serve``: the whole site in one process, with the demo agents at work.

Migrates the database, makes sure the demo logins exist (DEBUG only, or ``--demo-users``), starts
the metrics probe and the demo agents in background threads, and serves HTTP, WebSockets and the
static files (ServeStatic, as every site process does) on ``--host``:``--port`` with ``--server``
(daphne or uvicorn; the default is the faster of the two, see ``coordination.servers``). Ctrl-C stops
the server, then the threads.
"""

from __future__ import annotations

import os
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from coordination import metrics_probe, servers
from coordination.memory import get_memory
from empathy_os import MemoryUnavailableError

#: username -> (password, tier group). Known passwords: for development and demos only.
DEMO_USERS = {
    "lead": ("lead-demo-pass", "Steward"),
    "validator": ("validator-demo-pass", "Validator"),
    "observer": ("observer-demo-pass", "Observer"),
}


def ensure_demo_users() -> list[tuple[str, str | None, str]]:
    """Create the demo logins that are missing. Returns ``(username, password, group)``; the password
    is None for an account that exists with a password of its own (it is left alone)."""
    User = get_user_model()
    out = []
    for username, (password, group) in DEMO_USERS.items():
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.save()
                user.groups.add(Group.objects.get(name=group))
        known = created or user.check_password(password)
        out.append((username, password if known else None, group))
    return out


def demo_enabled(no_demo: bool) -> bool:
    return not no_demo and os.environ.get("EMPATHY_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


class Command(BaseCommand):
    help = "Serve the site (HTTP, WebSockets, static files) with daphne or uvicorn, the metrics probe and the demo agents."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="no demo agents (also: EMPATHY_DEMO=0)")
        parser.add_argument("--speed", type=float, default=1.0, help="demo pace factor (2 = twice as fast)")
        parser.add_argument("--demo-users", action="store_true",
                            help="create the demo logins even when DEBUG is off")
        parser.add_argument("--server", choices=servers.SERVERS, default=servers.DEFAULT_SERVER,
                            help=f"the ASGI server (default {servers.DEFAULT_SERVER})")

    def handle(self, *args, host, port, no_demo, speed, demo_users, server, **options):
        if not speed > 0:
            raise CommandError("--speed must be positive")
        if not 0 <= port <= 65535:
            raise CommandError("--port must be from 0 to 65535")
        call_command("migrate", interactive=False, verbosity=0)
        logins = ensure_demo_users() if settings.DEBUG or demo_users else []
        try:
            memory = get_memory()
        except MemoryUnavailableError as exc:
            raise CommandError(str(exc)) from None

        stop = threading.Event()
        threads = [metrics_probe.PROBE.start(stop)]
        demo = demo_enabled(no_demo)
        if demo:
            from coordination.demo import run_demo

            threads += run_demo(memory, stop, speed=speed)

        def ready():
            url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
            lines = [f"Empathy coordination at {url}", f"memory mode: {memory.mode}" +
                     (" (in-process; data is lost when the server stops)" if memory.mode == "mock" else ""),
                     f"demo agents: {'on, speed ' + format(speed, 'g') if demo else 'off'}",
                     f"server: {server}"]
            if logins:
                lines.append("demo logins (development only):")
                lines += [f"  {name} / {password or '(its own password)'}  ({group.lower()})"
                          for name, password, group in logins]
            lines.append("Ctrl-C stops the server.")
            self.stdout.write("\n".join(lines))
            self.stdout.flush()

        try:
            from empathy_site.asgi import application

            servers.serve(server, application, host, port, ready)
        except servers.ServerError as exc:
            raise CommandError(str(exc)) from None
        finally:
            stop.set()
            for thread in threads:
                thread.join(5)
            self.stdout.write("stopped")

"""The two ASGI servers the site runs on, daphne and uvicorn, in one place: the command line that
serves ``empathy_site.asgi:application`` in a process of its own (the deployment, the browser tests,
``bench --live``), and serving it inside this process (``manage.py serve``).

Both serve the same application: HTTP, the WebSockets (Channels), and the static files (ServeStatic's
middleware). Which one is the default follows the measurements in docs/benchmarks.md ("daphne vs
uvicorn").
"""

from __future__ import annotations

import signal
import sys

SERVERS = ("daphne", "uvicorn")
#: ``manage.py serve``'s server, and the deployment's (docs/deployment.md).
DEFAULT_SERVER = "uvicorn"
APPLICATION = "empathy_site.asgi:application"


class ServerError(Exception):
    """The server could not start (the port is in use, for example)."""


def check(server: str) -> str:
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}: use {' or '.join(SERVERS)}")
    return server


def command(server: str, host: str, port: int, *, proxy_headers: bool = False,
            application: str = APPLICATION) -> list[str]:
    """The command that serves the site (or another ``application``) with ``server`` on ``host``:``port``
    (run from the project's directory, with this Python)."""
    if check(server) == "daphne":
        return [sys.executable, "-m", "daphne", *(["--proxy-headers"] if proxy_headers else []),
                "-b", host, "-p", str(port), application]
    return [sys.executable, "-m", "uvicorn", *(["--proxy-headers"] if proxy_headers else ["--no-proxy-headers"]),
            "--host", host, "--port", str(port), "--lifespan", "off", "--no-access-log", application]


def serve(server: str, application, host: str, port: int, ready) -> None:
    """Serve ``application`` in this process until Ctrl-C or SIGTERM; ``ready()`` is called once the
    server listens. Raises :class:`ServerError` when it cannot listen."""
    # Ctrl-C stops the server even when a shell started it with SIGINT ignored (a background job):
    # Twisted and uvicorn only take SIGINT over from Python's default handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if check(server) == "daphne":
        _serve_daphne(application, host, port, ready)
    else:
        _serve_uvicorn(application, host, port, ready)


def _ignore_aborted_requests(loop, context):
    """The event loop's exception handler under daphne. When daphne stops, it cancels the requests
    still in flight, even one whose answer was sent and that is only closing up; Django's handler
    then leaves its client-disconnect listener behind, which ends with ``RequestAborted`` and is
    logged as a "Task exception was never retrieved" traceback. A client that went away is no error."""
    from django.core.exceptions import RequestAborted

    if not isinstance(context.get("exception"), RequestAborted):
        loop.default_exception_handler(context)


def _serve_daphne(application, host: str, port: int, ready) -> None:
    import asyncio

    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    def on_ready():
        asyncio.get_event_loop().set_exception_handler(_ignore_aborted_requests)
        ready()

    server = Server(application=application, endpoints=build_endpoint_description_strings(host=host, port=port),
                    signal_handlers=True, ready_callable=on_ready, verbosity=0)
    server.run()
    if server.abort_start:
        raise ServerError(f"could not listen on {host}:{port} (in use?)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve_uvicorn(application, host: str, port: int, ready) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                ready()

    # lifespan off: Channels' router has no lifespan application; access log off, like daphne's
    # verbosity 0 above.
    config = uvicorn.Config(application, host=host, port=port, lifespan="off", access_log=False,
                            log_level="warning", proxy_headers=False)
    server = Server(config)
    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again: SIGTERM, like
    # SIGINT, then ends here as KeyboardInterrupt, and the caller cleans up as after Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        return
    except SystemExit:  # uvicorn exits when it cannot bind
        raise ServerError(f"could not listen on {host}:{port} (in use?)") from None
    if not server.started:
        raise ServerError(f"could not listen on {host}:{port} (in use?)")

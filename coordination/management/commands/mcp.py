"""``manage.py mcp``: the MCP tools over stdio, for an agent host that starts a local server."""

import os

import anyio
from django.core.management.base import BaseCommand, CommandError

from coordination.mcp import build_server
from coordination.mcp_http import in_process_client, local_host
from empathy_os import EmpathyError
from empathy_os.client import AsyncClient


class Command(BaseCommand):
    help = ("Serve the MCP tools over stdio for one agent token: to this site's API in process "
            "(this process's memory: REDIS_URL, ...), or to a running site with --url.")

    def add_arguments(self, parser):
        parser.add_argument("--token", default=os.environ.get("EMPATHY_TOKEN"),
                            help="the agent's token (default: EMPATHY_TOKEN)")
        parser.add_argument("--url", default=None, help="a running site, e.g. https://coord.example.com")

    def handle(self, token, url, **options):
        if not token:
            raise CommandError("give the agent's token: --token or EMPATHY_TOKEN (manage.py create_agent_token)")
        try:
            anyio.run(self._serve, token, url)
        except EmpathyError as exc:  # e.g. the site refuses the token: say so, no traceback
            raise CommandError(f"{type(exc).__name__}: {exc}") from None

    async def _serve(self, token: str, url: str | None) -> None:
        if url:
            client = await AsyncClient.connect(url, token)  # says at once if the token is refused
        else:
            from empathy_site.asgi import api_app

            client = in_process_client(api_app, token, local_host())
        try:
            await build_server(lambda ctx: client).run_stdio_async()
        finally:
            await client.aclose()

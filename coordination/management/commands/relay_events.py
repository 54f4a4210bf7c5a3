import asyncio

from django.core.management.base import BaseCommand

from coordination.relay import Relay


class Command(BaseCommand):
    help = ("Relay domain events from Redis to the dashboards (channel layer). Run one or more per "
            "deployment when the servers run with EMPATHY_EMBEDDED_RELAY=0; they share the work.")

    def handle(self, *args, **options):
        self.stdout.write("relaying events (Ctrl-C stops)")
        try:
            asyncio.run(Relay().run())
        except KeyboardInterrupt:
            pass

import json

from django.core.management.base import BaseCommand, CommandError

from coordination.bench_http import format_http_table, run_http_bench
from coordination.bench_load import format_load_table, run_load_bench
from coordination.bench_live import format_live_table, run_live_bench
from coordination.servers import DEFAULT_SERVER, SERVERS
from empathy_os import MemoryUnavailableError, get_redis_memory
from empathy_os.redis_memory import resolve_redis_url
from empathy_os import bench as library_bench


class Command(BaseCommand):
    help = ("Benchmark the library against raw Redis round trips (same as python -m empathy_os.bench), "
            "with --http the agent API through a real server (uvicorn or daphne), or with --live the time from a "
            "library change to a dashboard's DOM in headless Chromium, with 100 dashboard WebSockets open.")

    def add_arguments(self, parser):
        parser.add_argument("--http", action="store_true",
                            help="benchmark claim/complete over the HTTP API: latency, and requests per second "
                                 "with 1 and 50 keep-alive clients")
        parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER,
                            help=f"--http, --load and --live: the ASGI server to run the site with (default {DEFAULT_SERVER})")
        parser.add_argument("--load", action="store_true",
                            help="bounded load run: 200 HTTP agents and 8 library processes on one Redis, then "
                                 "8 library processes alone beside the Lua claim ceiling")
        parser.add_argument("--tasks", type=int, default=None,
                            help="--load only: tasks in each phase (default 20000 mixed, 8000 processes alone)")
        parser.add_argument("--requests", type=int, default=2000,
                            help="--http only: requests per throughput row (default 2000)")
        parser.add_argument("--live", action="store_true",
                            help="benchmark event -> browser DOM on a live dashboard (needs a Redis)")
        parser.add_argument("--sockets", type=int, default=100,
                            help="--live only: dashboard WebSockets open during the run (default 100)")
        parser.add_argument("--samples", type=int, default=None)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--mock", action="store_true", help="library bench only: use the in-process mock")
        parser.add_argument("--url", help="Redis URL (default: REDIS_URL, localhost:6379, else mock)")

    def handle(self, *args, **options):
        if options["live"]:
            return self.handle_live(options)
        if options["load"]:
            return self.handle_load(options)
        if not options["http"]:
            argv = ["--json"] if options["json"] else []
            if options["samples"]:
                argv += ["--samples", str(options["samples"])]
            if options["mock"]:
                argv.append("--mock")
            if options["url"]:
                argv += ["--url", options["url"]]
            code = library_bench.main(argv)
            if code:
                raise CommandError(f"benchmark failed (exit {code})")
            return
        try:
            memory = get_redis_memory(options["url"])
            report = run_http_bench(memory, options["samples"] or 500, server=options["server"],
                                    throughput_requests=options["requests"],
                                    log=(lambda *_: None) if options["json"] else self.stderr.write)
        except (MemoryUnavailableError, RuntimeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(report) if options["json"] else format_http_table(report))

    def handle_load(self, options):
        try:
            memory = get_redis_memory(options["url"])
            report = run_load_bench(memory, options["tasks"] or 20000, server=options["server"],
                                    processes_tasks=options["tasks"] or 8000,
                                    log=(lambda *_: None) if options["json"] else self.stderr.write)
        except (MemoryUnavailableError, RuntimeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(report) if options["json"] else format_load_table(report))

    def handle_live(self, options):
        url = options["url"] or resolve_redis_url()
        if options["mock"] or not url:
            raise CommandError("bench --live needs a Redis (the site runs in another process): "
                               "start one on localhost:6379 or set REDIS_URL / --url")
        try:
            report = run_live_bench(url, options["samples"] or 200, options["sockets"], server=options["server"],
                                    log=(lambda *_: None) if options["json"] else self.stderr.write)
        except (MemoryUnavailableError, RuntimeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(report) if options["json"] else format_live_table(report))

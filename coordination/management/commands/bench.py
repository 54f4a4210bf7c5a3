import json

from django.core.management.base import BaseCommand, CommandError

from coordination.bench_http import format_http_table, run_http_bench
from empathy_os import MemoryUnavailableError, get_redis_memory
from empathy_os import bench as library_bench


class Command(BaseCommand):
    help = ("Benchmark the library against raw Redis round trips (same as python -m empathy_os.bench), "
            "or with --http the agent API through a real daphne server.")

    def add_arguments(self, parser):
        parser.add_argument("--http", action="store_true", help="benchmark claim/complete over the HTTP API")
        parser.add_argument("--samples", type=int, default=None)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--mock", action="store_true", help="library bench only: use the in-process mock")
        parser.add_argument("--url", help="Redis URL (default: REDIS_URL, localhost:6379, else mock)")

    def handle(self, *args, **options):
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
            report = run_http_bench(memory, options["samples"] or 500,
                                    log=(lambda *_: None) if options["json"] else self.stderr.write)
        except (MemoryUnavailableError, RuntimeError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(report) if options["json"] else format_http_table(report))

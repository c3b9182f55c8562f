from django.core.management.base import BaseCommand

from dashboard.poller.server import serve


class Command(BaseCommand):
    help = (
        "Run daphne with the poller inside (one process, no Redis needed); on PostgreSQL with REDIS_URL, "
        "run it on every node: one process polls, the others stand by."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-poll", action="store_true", help="serve only; another process polls (needs REDIS_URL)")

    def handle(self, *args, host, port, no_poll, **options):
        self.stdout.write(f"Serving on http://{host}:{port}/{'' if no_poll else ' with the poller inside'}; Ctrl-C stops.")
        serve(host=host, port=port, poll=not no_poll)

import signal
import threading

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from dashboard.poller import jobs
from dashboard.poller.sources import configured_sources
from dashboard.upstreams.http import UpstreamError


class Command(BaseCommand):
    help = "Run one full pass of every configured source (list sync, live refresh, outbox delivery), then exit."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", required=True, help="one pass, then exit (`poll` runs forever)")

    def handle(self, *args, **options):
        try:
            sources = configured_sources()
        except ImproperlyConfigured as exc:
            raise CommandError(exc) from None
        if not sources:
            self.stdout.write("No source configured: set HTH_API_URL and/or ONEUPTIME_API_URL.")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            reports = jobs.sync_once(sources=sources, on_progress=ProgressBar(self.stderr), stop=stop)
        except UpstreamError as exc:
            raise CommandError(exc) from None
        except DatabaseError as exc:
            reason = " ".join(str(exc).split())
            raise CommandError(f"the database failed ({reason}); nothing past the last stored page was recorded") from None
        for source, report in reports.items():
            self.stdout.write(f"{source}: {report}")
        if stop.is_set():
            raise CommandError("stopped by SIGTERM between pages; the next run resumes where this one stopped")


class ProgressBar:
    """A backfill can take minutes: show how far it is (redrawn on a terminal, every 10% in a log)."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int | None) -> None:
        if total is None:
            return
        done = min(done, total)
        if self.tty:
            filled = self.WIDTH * done // max(total, 1)
            self.stream.write(f"\rbackfill [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:,}/{total:,} events", ending="")
            if done >= total:
                self.stream.write("")
        elif (tenth := 10 * done // max(total, 1)) > self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(f"backfill {done:,}/{total:,} events")

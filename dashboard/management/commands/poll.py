import signal
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from dashboard.poller.jobs import poll_forever
from dashboard.poller.sources import configured_sources


class Command(BaseCommand):
    help = "Sync every configured source forever; SIGTERM or Ctrl-C stops it cleanly between pages."

    def handle(self, *args, **options):
        try:
            sources = configured_sources()
        except ImproperlyConfigured as exc:
            raise CommandError(exc) from None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        names = ", ".join(source.source for source in sources) or "no source (set HTH_API_URL or ONEUPTIME_API_URL)"
        self.stdout.write(
            f"Polling {names} every {settings.POLL_INTERVAL_SECONDS:g}s, "
            f"unfinished events every {settings.LIVE_REFRESH_SECONDS:g}s."
        )
        poll_forever(stop=stop, sources=sources)
        self.stdout.write("Stopped.")

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.live.screens import kiosk_url, screen_named
from dashboard.models import Screen


class Command(BaseCommand):
    help = "Create the kiosk link of one wall screen (or show its current one) and print its URL last."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the screen's name, e.g. 'Office TV'")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where people reach Pulseboard")
        parser.add_argument("--project", default="", help="show only this project's events")
        parser.add_argument("--time-zone", default="UTC", help="an IANA zone, e.g. Europe/Helsinki")

    def handle(self, *args, name, base_url, project, time_zone, **options):
        try:
            Screen(name=name, project=project, time_zone=time_zone).clean()
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        screen = screen_named(name, project=project, time_zone=time_zone)
        self.stdout.write(f"Kiosk link for screen {screen.name!r} (revoke it in the admin under Screens):")
        self.stdout.write(kiosk_url(screen, base_url=base_url))

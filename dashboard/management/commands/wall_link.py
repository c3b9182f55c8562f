from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.live.screens import LinkExists, kiosk_url, screen_named
from dashboard.models import Screen


class Command(BaseCommand):
    help = "Create the kiosk link of one wall screen and print its URL last (only a hash is kept: save it now)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the screen's name, e.g. 'Office TV'")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where people reach Pulseboard")
        parser.add_argument("--project", default="", help="show only this project's events")
        parser.add_argument("--time-zone", default="UTC", help="an IANA zone, e.g. Europe/Helsinki")
        parser.add_argument("--new-key", action="store_true", help="replace an active screen's link (the old one stops)")

    def handle(self, *args, name, base_url, project, time_zone, new_key, **options):
        try:
            Screen(name=name, project=project, time_zone=time_zone).clean()
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        try:
            screen = screen_named(name, project=project, time_zone=time_zone, new_key=new_key)
        except LinkExists as exc:
            raise CommandError(f"{exc} Run again with --new-key to replace it (the old link stops working).") from None
        self.stdout.write(f"Kiosk link for screen {screen.name!r} (shown only now; revoke it in the admin under Screens):")
        self.stdout.write(kiosk_url(screen, base_url=base_url))

from django.core.management.base import BaseCommand

from dashboard import demo


class Command(BaseCommand):
    help = "Run Pulseboard with built-in simulators of both upstreams, the poller and daphne, on one machine."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--history", type=int, default=600, help="events the simulator starts with")

    def handle(self, *args, host, port, history, **options):
        demo.run(host=host, port=port, history=history, write=self.stdout.write)

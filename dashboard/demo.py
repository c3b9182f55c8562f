"""The whole product on one machine: simulators, poller and daphne in one process.

Without REDIS_URL the channel layer lives in memory, per process, so the poller must run inside
daphne's process for its pushes to reach the sockets: it runs in a worker thread started from
daphne's event loop (through sync_to_async, so that pushes hop back onto that loop safely).
"""

import asyncio
import secrets
import threading
from contextlib import ExitStack

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from dashboard.models import Event, Incident, SyncState, Transition
from dashboard.simulators import hth, oneuptime

DEMO_USER = "admin"


def run(*, host: str, port: int, history: int, write) -> None:
    import daphne.server  # installs Twisted's asyncio reactor; must come before anything imports the reactor
    from asgiref.sync import sync_to_async
    from channels.routing import get_default_application

    from dashboard.poller import poll_forever
    from dashboard.sources import configured_sources

    prepare_database()
    password = demo_password()
    with ExitStack() as stack:
        hth_sim = stack.enter_context(hth.serve(port=0, seed=7))
        hth_sim.generate(history)
        hth_sim.start_activity(interval=2.0)
        settings.HTH_API_URL = hth_sim.url
        settings.HTH_COMPANY_KEY = hth_sim.company_key
        settings.HTH_ACCOUNT_KEY = hth_sim.account_key
        settings.HTH_PROJECTS = []
        oneuptime_sim = stack.enter_context(oneuptime.serve(port=0, seed=7))
        oneuptime_sim.generate(incidents=40, notes=400)
        oneuptime_sim.start_activity(interval=5.0)
        settings.ONEUPTIME_API_URL = oneuptime_sim.url
        settings.ONEUPTIME_API_KEY = oneuptime_sim.api_key
        settings.ONEUPTIME_PROJECT_ID = oneuptime_sim.project_id

        sources = configured_sources()
        stop = threading.Event()

        def start_poller():
            poller = sync_to_async(poll_forever, thread_sensitive=False)
            asyncio.get_event_loop().create_task(poller(stop=stop, sources=sources))

        url = f"http://{host}:{port}"
        write(f"Helix TeamHub simulator: {hth_sim.url}")
        write(f"OneUptime simulator:     {oneuptime_sim.url}")
        write(f"Pulseboard:  {url}/   wall: {url}/wall/   health: {url}/healthz")
        write(f"Log in at {url}/admin/ as {DEMO_USER!r} with password {password!r} (kept in data/demo_admin_password).")
        write("Ctrl-C stops everything.")
        server = daphne.server.Server(
            application=get_default_application(),
            endpoints=[f"tcp:port={port}:interface={host}"],
            ready_callable=start_poller,
        )
        try:
            server.run()
        finally:
            stop.set()


def prepare_database() -> None:
    """Migrate, collect static files, and forget the mirror of the previous run's simulators."""
    call_command("migrate", interactive=False, verbosity=0)
    if not settings.DEBUG:
        call_command("collectstatic", interactive=False, verbosity=0)
    Transition.objects.all().delete()
    Event.objects.all().delete()
    Incident.objects.all().delete()  # and their notes
    SyncState.objects.all().delete()


def demo_password() -> str:
    password_file = settings.DATA_DIR / "demo_admin_password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(12))
    password = password_file.read_text().strip()
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password

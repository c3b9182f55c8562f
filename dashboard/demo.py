"""The whole product on one machine: both simulators, the poller and daphne, in one process."""

import secrets
from contextlib import ExitStack

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from dashboard.live.screens import kiosk_url, screen_named
from dashboard.models import (
    ChangeMapping,
    Event,
    HookDelivery,
    Incident,
    IncidentClock,
    IncidentStateChange,
    Pipeline,
    SyncState,
    Transition,
)
from dashboard.poller.server import serve
from dashboard.simulators import hth, oneuptime

DEMO_USER = "admin"
# The simulated OneUptime's monitors are named after components, Helix TeamHub's projects are not: the demo maps
# them, as people would in the admin, so "what changed just before" an incident has something to put first.
DEMO_MAPPINGS = {
    "api-gateway": "atlas",
    "payments-service": "borealis",
    "auth-proxy": "luotsi",
    "sync-api": "chef",
    "webhook-dispatcher": "luotsi",
    "search-indexer": "atlas",
    "metrics-query": "borealis",
}


def run(*, host: str, port: int, history: int, write) -> None:
    prepare_database()
    password = demo_password()
    url = f"http://{host}:{port}"
    with ExitStack() as stack:
        hth_sim = stack.enter_context(hth.serve(port=0, seed=7))
        hth_sim.generate(history)
        hth_sim.start_activity(interval=2.0)
        oneuptime_sim = stack.enter_context(oneuptime.serve(port=0, seed=7))
        oneuptime_sim.generate(incidents=40, notes=400)
        oneuptime_sim.start_activity(interval=5.0)
        settings.HTH_API_URL = hth_sim.url
        settings.HTH_COMPANY_KEY = hth_sim.company_key
        settings.HTH_ACCOUNT_KEY = hth_sim.account_key
        settings.HTH_PROJECTS = []
        settings.ONEUPTIME_API_URL = oneuptime_sim.url
        settings.ONEUPTIME_API_KEY = oneuptime_sim.api_key
        settings.ONEUPTIME_PROJECT_ID = oneuptime_sim.project_id
        # Both simulators push to the receivers, so simulated pushes reach the walls within a fraction of a second.
        settings.HTH_WEBHOOK_SECRET = settings.ONEUPTIME_WEBHOOK_SECRET = secrets.token_urlsafe(16)
        hth_sim.add_webhook(f"{url}/hooks/hth/", {"X-Pulseboard-Secret": settings.HTH_WEBHOOK_SECRET})
        oneuptime_sim.add_workflow(f"{url}/hooks/oneuptime/", {"X-Pulseboard-Secret": settings.ONEUPTIME_WEBHOOK_SECRET})
        write(f"Helix TeamHub simulator: {hth_sim.url}")
        write(f"OneUptime simulator:     {oneuptime_sim.url}")
        write(f"Pulseboard:  {url}/   health: {url}/healthz")
        write(f"Wall display (kiosk link): {kiosk_url(screen_named('Demo TV', new_key=True), base_url=url)}")
        write(f"Log in at {url}/ as {DEMO_USER!r} with password {password!r} (kept in data/demo_admin_password).")
        write("Ctrl-C stops everything.")
        serve(host=host, port=port)


def prepare_database() -> None:
    """Migrate, collect static files, and forget the mirror of the previous run's simulators."""
    call_command("migrate", interactive=False, verbosity=0)
    if not settings.DEBUG:
        call_command("collectstatic", interactive=False, verbosity=0)
    Transition.objects.all().delete()
    Event.objects.all().delete()
    Pipeline.objects.all().delete()  # derived from the events
    Incident.objects.all().delete()  # and their notes
    IncidentStateChange.objects.all().delete()
    IncidentClock.objects.all().delete()
    for monitor, project in DEMO_MAPPINGS.items():
        ChangeMapping.objects.get_or_create(
            source_kind="monitor", source_name=monitor, target_kind="project", target_name=project
        )
    SyncState.objects.all().delete()
    HookDelivery.objects.all().delete()


def demo_password() -> str:
    password_file = settings.DATA_DIR / "demo_admin_password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(12))
    password = password_file.read_text().strip()
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True})
    user.is_staff = user.is_superuser = True
    if not user.check_password(password):  # re-hashing the same password would still log everyone out
        user.set_password(password)
    user.save()
    return password

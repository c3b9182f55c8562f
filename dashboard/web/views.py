import logging
import threading

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError
from django.http import Http404, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from dashboard import id_tokens
from dashboard.models import Incident, Pipeline
from dashboard.web import feeds, health, insights, pages, pipeline_insights, pipelines, scrape
from dashboard.web.filters import EventFilter

log = logging.getLogger(__name__)


@login_required
def dashboard(request):
    event_filter, before = EventFilter.from_query(request.GET), request.GET.get("before", "")
    if request.htmx and before:
        return render(request, f"{pages.DASHBOARD}#feed-page", pages.dashboard_context(event_filter=event_filter, before=before))
    return render(request, pages.DASHBOARD, pages.dashboard_page_context(event_filter=event_filter, before=before))


@login_required
def incident(request, upstream_id):
    """Only plain ids get a timeline (dashboard/id_tokens.py); the panels show other incidents unlinked."""
    if not id_tokens.is_plain(upstream_id):
        raise Http404("No such incident.")
    incident = get_object_or_404(Incident, upstream_id=upstream_id)
    return render(request, pages.INCIDENT, pages.incident_context(incident=incident))


@login_required
def insights_page(request):
    """The retrospective; its filters live in the URL (?weeks=12&severity=Critical&project=borealis), so a view
    is a link to share. The severity narrows the incidents, the project the builds."""
    try:
        weeks = int(request.GET.get("weeks", insights.WEEKS_SHOWN))
    except ValueError:
        weeks = insights.WEEKS_SHOWN
    severity = request.GET.get("severity", "").strip()[:200]
    project = request.GET.get("project", "").strip()[:200]
    project = "" if "\x00" in project else project  # a NUL names no project, and PostgreSQL refuses it
    found = insights.insights(now=timezone.now(), weeks=weeks, severity=severity)
    builds = pipeline_insights.build_insights(since=found.since, until=found.until, project=project)
    return render(request, "dashboard/insights.html", {"insights": found, "builds": builds, "weeks": len(found.weeks)})


@login_required
def pipeline_list(request):
    """Every pipeline, or the ones a dashboard count names (?state=failing, running, stalled)."""
    state = request.GET.get("state", "")
    state = state if state in pipelines.LIST_STATES else ""
    now = timezone.now()
    tiles, total = pipelines.listed(state=state, now=now)
    return render(request, pipelines.LIST, {"tiles": tiles, "total": total, "state": state, "now": now})


@login_required
def pipeline(request, project, repository, name):
    found = get_object_or_404(
        Pipeline.objects.select_related("latest_run", "last_finished"), project=project, repository=repository, name=name
    )
    context = pipelines.page_context(pipeline=found, now=timezone.now(), before=request.GET.get("before", ""))
    return render(request, pipelines.PAGE, context)


@never_cache
def wall(request):
    """A kiosk link (?key=…) opens one screen without a login; people logged in may look too."""
    key = request.GET.get("key", "")
    screen = feeds.screen_for(key)
    if key and (screen is None or screen.is_revoked):
        return render(request, "dashboard/screen_revoked.html", {"unknown": screen is None}, status=403)
    if screen is None and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return render(request, pages.WALL, pages.wall_context(screen=screen, now=timezone.now()))


_database_down = threading.Event()


@never_cache
def healthz(request):
    """Anyone may ask; how much they are told depends on who they are (see web/health.py).

    While the database is unreachable: 503, still JSON (never the HTML error page), and no details.
    """
    try:
        report = health.health_report(now=timezone.now(), audience=health.audience(request))
    except DatabaseError as exc:
        if not _database_down.is_set():  # once an outage per process: every page asks every few seconds
            log.warning("/healthz: the database is unavailable: %s", " ".join(str(exc).split())[:300])
            _database_down.set()
        return JsonResponse({"status": "unavailable"}, status=503)
    if _database_down.is_set():
        _database_down.clear()
        log.warning("/healthz: the database answers again")
    return JsonResponse(report)


@never_cache
def metrics(request):
    """Prometheus scrapes this with a bearer token (web/scrape.py); 404 when no token is set, 403 for a wrong one."""
    if not scrape.enabled():
        raise Http404("metrics are off (set METRICS_TOKEN)")
    if not scrape.authorized(request):
        return HttpResponseForbidden("wrong or missing metrics token")
    return HttpResponse(scrape.exposition(now=timezone.now()), content_type="text/plain; version=0.0.4; charset=utf-8")

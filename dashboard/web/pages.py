"""What each page shows, as template context and as the fragments a socket receives.

The view renders a whole page from these contexts; a socket that (re)connects gets `snapshot()`,
the same partials with fresh data, so nothing missed while it was away stays missing.
"""

from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard.models import Incident, Pipeline, Screen
from dashboard.web import changes_before, feeds, incident_timeline, pipelines
from dashboard.web.filters import EventFilter

DASHBOARD = "dashboard/dashboard.html"
INCIDENT = "dashboard/incident.html"
WALL = "dashboard/wall.html"
INCIDENT_PARTS = ["incident-header", "changes-before", "timeline"]  # the incident page's live regions


def dashboard_context(*, event_filter: EventFilter, before: str = "", now: datetime | None = None) -> dict:
    """The dashboard's live regions and its feed: what a snapshot needs, without the filter form's choices."""
    page = feeds.event_feed(event_filter=event_filter, before=before)
    return {
        **summary_context(now=now or timezone.now()),
        "event_filter": event_filter,
        "page": page,
        "older_query": event_filter.as_query(before=page.next_cursor) if page.next_cursor else "",
        "live": feeds.live_events(event_filter=event_filter),
        "incidents": open_incidents(now=now or timezone.now()),
    }


def dashboard_page_context(*, event_filter: EventFilter, before: str = "") -> dict:
    """The whole page: the live regions plus the filter form's choices, which only the page shows."""
    return dashboard_context(event_filter=event_filter, before=before) | {"choices": feeds.filter_choices()}


def summary_context(*, now: datetime) -> dict:
    """The counts the wall's status strip shows, for the dashboard's summary strip: the same words in both places."""
    counts = feeds.incident_counts()
    builds = pipelines.pipeline_counts()
    return {"builds": builds, "incident_counts": counts, "level": pipelines.level(builds, counts)}


def open_incidents(*, now: datetime, limit: int = feeds.OPEN_INCIDENTS_SHOWN) -> list[Incident]:
    """The worst open incidents, worst first, each with how long it has taken so far."""
    return incident_timeline.with_durations(feeds.open_incidents(limit=limit), now=now)


def with_changes(incidents: list[Incident]) -> list[Incident]:
    """Each incident's `changes` (what changed just before it), for the wall's cards."""
    for incident in changes_before.with_sources(incidents):
        incident.changes = changes_before.changes_before(incident)
    return incidents


def incident_context(*, incident: Incident, now: datetime | None = None) -> dict:
    """The incident page: its states and notes as one timeline (web/incident_timeline.py), and how long it took."""
    return {
        "incident": incident,
        "timeline": incident_timeline.incident_timeline(incident, now=now or timezone.now()),
        "changes": changes_before.changes_before(incident),
        "oneuptime_url": oneuptime_url(incident),
    }


def oneuptime_url(incident: Incident) -> str:
    """The incident's page in OneUptime's dashboard, next to the API it came from; empty if unknown."""
    project = incident.project_id or settings.ONEUPTIME_PROJECT_ID
    api = urlsplit(settings.ONEUPTIME_API_URL)
    base = urlunsplit(api._replace(netloc=api.netloc.rpartition("@")[2])).removesuffix("/api")  # never its credentials
    if not (base and project):
        return ""
    return f"{base}/dashboard/{quote(project, safe='')}/incidents/{quote(incident.upstream_id, safe='')}"


def wall_context(*, screen: Screen | None, now: datetime) -> dict:
    project = screen.project if screen else ""
    rows = feeds.wall_rows(screen)
    incidents = wall_incidents_context(screen=screen, now=now)
    builds = pipelines.wall_builds(project=project, now=now, limit=rows["builds"])
    return incidents | {
        "level": pipelines.level(builds.counts, incidents["incident_counts"]),
        "screen": screen,
        "panels": feeds.screen_panels(screen),
        "builds": builds,
        "activity": feeds.wall_activity(project=project, limit=rows["activity"]),
    }


def wall_incidents_context(*, screen: Screen | None, now: datetime, counts: dict | None = None) -> dict:
    """The wall's incident parts alone: every screen shows the same incidents, so a push renders them once."""
    counts = feeds.incident_counts() if counts is None else counts
    incidents = open_incidents(now=now, limit=feeds.wall_rows(screen)["incidents"])
    return {
        "incidents": with_changes(incidents),
        "incidents_more": max(0, counts["open"] - len(incidents)),
        "incident_counts": counts,
        "now": now,
    }


def snapshot(
    *,
    page: str,
    event_filter: EventFilter | None = None,
    screen: Screen | None = None,
    incident: Incident | None = None,
    pipeline: Pipeline | None = None,
    now: datetime,
) -> str:
    """Every live region of a page, freshly rendered, as out-of-band swaps."""
    if page == "dashboard":
        context = dashboard_context(event_filter=event_filter or EventFilter())
        return render_parts(DASHBOARD, ["summary", "live-list", "feed", "open-incidents"], context)
    if page == "incident":
        return render_parts(INCIDENT, INCIDENT_PARTS, incident_context(incident=incident))
    if page == "pipeline":
        return pipeline_parts(pipeline, now=now)
    context = wall_context(screen=screen, now=now)
    shown = {panel["panel"] for panel in context["panels"]}
    parts = [f"wall-{panel}" for panel in ("builds", "incidents", "activity") if panel in shown]
    return render_parts(WALL, [*parts, "wall-strip-builds", "wall-strip-incidents", "wall-level", "wall-status"], context)


def pipeline_parts(pipeline: Pipeline, *, now: datetime) -> str:
    """The pipeline page's live regions, fresh from the database (the row may be newer than the one in hand)."""
    fresh = Pipeline.objects.select_related("latest_run", "last_finished").filter(pk=pipeline.pk).first()
    if fresh is None:
        return ""
    return render_parts(pipelines.PAGE, ["pipeline-header", "pipeline-history"], pipelines.page_context(pipeline=fresh, now=now))


def render_parts(template: str, partials: list[str], context: dict) -> str:
    return "".join(render_to_string(f"{template}#{name}", context) for name in partials)

"""The pages people look at, rendered from what the sync stored."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from dashboard.live import pipelines, screens
from dashboard.models import Event, EventStatus, Incident, IncidentNote, Screen
from dashboard.web import feeds, pages

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(client):
    user = get_user_model().objects.create_user("oncall", password="x")
    client.force_login(user)
    return user


def make_event(upstream_id, *, minutes_ago=0, **fields):
    now = timezone.now()
    values = {
        "timestamp": now - timedelta(minutes=minutes_ago),
        "operation": "created",
        "target": "push",
        "project": "luotsi",
        "subject_id": "assimov",
        "raw": {},
        "first_seen_at": now,
        "synced_at": now,
        "progress_changed_at": now,
        "status": EventStatus.COMPLETED,
    } | fields
    return Event.objects.create(upstream_id=upstream_id, **values)


def test_pages_need_a_login(client):
    assert client.get("/").status_code == 302
    assert client.get("/wall/").status_code == 302
    assert client.get("/login/").status_code == 404 and client.get("/accounts/login/").status_code == 200


def test_the_feed_marks_every_event_and_the_live_ones(client, person, hth_sim):
    hth_sim.generate(20)
    build = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
    call_command("sync", "--once")
    html = client.get("/").content.decode()
    assert Event.objects.get(upstream_id=build).status == EventStatus.LIVE
    assert html.count("data-event-id=") >= 21
    assert html.count(f'data-event-id="{build}" data-live') == 2, "in the feed and in the running-now panel"


def test_filters_live_in_the_url_and_narrow_the_feed(client, person):
    make_event("a", project="luotsi", target="push")
    make_event("b", project="chef", target="push")
    make_event("c", project="luotsi", target="build", name="Release 7")
    assert 'data-event-id="b"' not in client.get("/?project=luotsi").content.decode()
    html = client.get("/?project=luotsi&target=build").content.decode()
    assert 'data-event-id="c"' in html and 'data-event-id="a"' not in html
    assert 'data-event-id="c"' in client.get("/?q=release").content.decode()
    assert 'data-event-id="a"' not in client.get("/?person=someone-else").content.decode()
    since = (timezone.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert "data-event-id=" not in client.get(f"/?since={since}").content.decode().split('id="feed"')[1]


def test_the_feed_pages_by_cursor_without_gaps_or_repeats(client, person):
    for index in range(120):
        make_event(f"e{index:03}", minutes_ago=index // 2)  # pairs share a timestamp
    seen, url = [], "/"
    while url:
        response = client.get(url, headers={"HX-Request": "true"} if seen else {})
        html = response.content.decode()
        seen += [part.split('"')[0] for part in html.split('id="event-')[1:]]
        marker = 'hx-get="'
        url = html.split(marker)[1].split('"')[0].replace("&amp;", "&") if marker in html else ""
        url = "/" + url if url.startswith("?") else url
    assert len(seen) == 120 and len(set(seen)) == 120


def test_a_javascript_link_from_upstream_is_never_clickable(client, person):
    make_event("x", resources=["javascript:alert(1)", "https://ci.example/1"], name='<img src=x onerror="alert(1)">')
    html = client.get("/").content.decode()
    assert 'href="javascript:' not in html and 'href="https://ci.example/1"' in html
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_the_timeline_is_chronological_and_sanitized(client, person):
    now = timezone.now()
    incident = Incident.objects.create(
        upstream_id="inc-1", title="API latency", state="Investigating", state_color="#F59E0B", synced_at=now
    )
    IncidentNote.objects.create(upstream_id="n2", incident=incident, note="second", posted_at=now - timedelta(minutes=5))
    IncidentNote.objects.create(
        upstream_id="n1", incident=incident, note="first <script>alert(1)</script>", posted_at=now - timedelta(hours=1)
    )
    IncidentNote.objects.create(upstream_id="n3", incident=incident, note="gone", posted_at=now, deleted=True)
    html = client.get("/incidents/inc-1/").content.decode()
    assert html.index('data-note-id="n1"') < html.index('data-note-id="n2"')
    assert 'data-note-id="n3"' not in html
    assert "<script>alert" not in html
    assert 'data-tone="bad"' in html and "#F59E0B" not in html, "our palette, not upstream's colour"


def test_a_kiosk_link_opens_its_screen_without_a_login_until_revoked(client):
    screen = screens.screen_named("Office TV", project="luotsi", time_zone="Europe/Helsinki")
    response = client.get(f"/wall/?key={screen.key}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-time-zone="Europe/Helsinki"' in html and f"screen={screen.key}" in html
    screens.revoke(screen)
    revoked = client.get(f"/wall/?key={screen.key}")
    assert revoked.status_code == 403 and "revoked" in revoked.content.decode()
    assert client.get("/wall/?key=not-a-key").status_code == 403


def test_wall_link_prints_the_url_last(capsys, client):
    call_command("wall_link", "Lobby", "--base-url", "https://pulse.example")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("https://pulse.example/wall/?key=")
    assert client.get(last.removeprefix("https://pulse.example")).status_code == 200


def test_kiosk_keys_are_stored_only_as_hashes_and_shown_once(client, capsys):
    call_command("wall_link", "Lobby")
    key = capsys.readouterr().out.strip().splitlines()[-1].split("key=")[1]
    stored = Screen.objects.values().get(name="Lobby")
    assert key not in str(stored), "a copy of the database must not open the wall"
    with pytest.raises(CommandError, match="already has a kiosk link"):
        call_command("wall_link", "Lobby")
    call_command("wall_link", "Lobby", "--new-key")
    new_key = capsys.readouterr().out.strip().splitlines()[-1].split("key=")[1]
    assert client.get(f"/wall/?key={new_key}").status_code == 200
    assert client.get(f"/wall/?key={key}").status_code == 403, "the replaced link stops working"


def test_existing_kiosk_links_keep_working_after_the_keys_are_hashed(client, transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("dashboard", "0008_incident_deleted_transition")])
    old_apps = executor.loader.project_state([("dashboard", "0008_incident_deleted_transition")]).apps
    old_apps.get_model("dashboard", "Screen").objects.create(name="Old TV", token="an-old-kiosk-key")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert client.get("/wall/?key=an-old-kiosk-key").status_code == 200
    assert "an-old-kiosk-key" not in str(Screen.objects.values().get(name="Old TV"))


def test_healthz_reports_each_source(client, person, hth_sim):
    hth_sim.generate(12)
    hth_sim.start_build(project="luotsi", repository="chef")
    call_command("sync", "--once")
    health = client.get("/healthz").json()
    hth = health["sources"]["hth"]
    assert health["status"] == "ok" and health["live_count"] == 1 and health["version"]
    assert health["versions"] == [health["version"]], "alone (no Redis), the only version served is its own"
    assert hth["configured"] and hth["ok"] and hth["last_success_at"] and hth["reason"] == ""
    assert hth["counts"] == {"events": 13, "live": 1}
    assert health["sources"]["oneuptime"]["configured"] is False
    assert health["sources"]["oneuptime"]["counts"]["notes"] == 0
    poller = health["poller"]  # `sync --once` holds no lock: nobody polls
    assert poller == (
        {"mode": "advisory lock", "holder": None, "since": None}
        if connection.vendor == "postgresql"
        else {"mode": "single node (SQLite: no lock, every process that polls is the poller)"}
    )


def fail_a_sync(hth_sim, settings, status=500):
    call_command("sync", "--once")
    settings.UPSTREAM_RETRIES = 0
    hth_sim.fail_next(1, status=status)
    with pytest.raises(CommandError):
        call_command("sync", "--once")


def test_healthz_tells_strangers_only_ok_or_degraded(client, hth_sim, settings):
    fail_a_sync(hth_sim, settings)
    health = client.get("/healthz").json()
    assert health == {
        "status": "degraded",
        "sources": {"hth": {"configured": True, "ok": False}, "oneuptime": {"configured": False, "ok": False}},
        "channel_layer": {"ok": True},
    }


def test_healthz_reports_a_channel_layer_it_cannot_reach(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and health["channel_layer"] == {"ok": False}


def test_healthz_gives_a_wall_and_people_a_short_reason_without_hostnames(client, hth_sim, settings):
    fail_a_sync(hth_sim, settings)
    screen = screens.screen_named("Office TV")
    for health in (client.get(f"/healthz?key={screen.key}").json(), login(client) and client.get("/healthz").json()):
        assert health["status"] == "degraded" and health["version"]
        hth = health["sources"]["hth"]
        assert hth["ok"] is False and hth["reason"] == "answered HTTP 500" and hth["last_success_at"]
        assert "127.0.0.1" not in str(health) and "last_error" not in hth


def test_healthz_says_an_unreachable_upstream_is_unreachable_not_where_it_is(client, person, settings):
    settings.HTH_API_URL, settings.HTH_COMPANY_KEY, settings.HTH_ACCOUNT_KEY = "http://127.0.0.1:9/api", "c", "a"
    settings.UPSTREAM_RETRIES = 0
    with pytest.raises(CommandError):
        call_command("sync", "--once")
    health = client.get("/healthz").json()
    assert health["sources"]["hth"]["reason"] == "unreachable"
    assert "127.0.0.1" not in str(health)


def login(client):
    client.force_login(get_user_model().objects.create_user("viewer", password="x"))
    return True


def test_a_screen_added_in_the_admin_shows_its_link_once(client):
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "x"))
    form = {"name": "Lobby", "project": "", "time_zone": "Europe/Helsinki", "text_scale": "1.0"}
    form |= {f"panels-{field}": value for field, value in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.items()}
    added = client.post("/admin/dashboard/screen/add/", form, follow=True)
    link = re.search(r"Kiosk link, shown only now: <a href=\"(http://testserver/wall/\?key=[\w-]+)\"", added.content.decode())
    assert link, added.content.decode()[-3000:]
    assert client.get(link.group(1).removeprefix("http://testserver")).status_code == 200
    screen = Screen.objects.get(name="Lobby")
    change_page = client.get(f"/admin/dashboard/screen/{screen.pk}/change/").content.decode()
    assert link.group(1).split("key=")[1] not in change_page and "Shown only when it was made" in change_page


def test_forms_may_post_only_to_this_site(client):
    policy = client.get("/accounts/login/").headers["Content-Security-Policy"]
    assert "form-action 'self'" in policy, "an injected <form> must not send what it collects elsewhere"


def test_the_timeline_shows_each_notes_state_both_times_the_duration_and_a_link_to_oneuptime(client, person, settings):
    settings.ONEUPTIME_API_URL = "https://oneuptime.example/api"
    now = timezone.now()
    incident = Incident.objects.create(
        upstream_id="inc-9",
        project_id="proj-1",
        title="Checkout errors",
        state="Escalated",
        state_color="#FACC15",
        severity="Critical",
        declared_at=now - timedelta(hours=2, minutes=5),
        synced_at=now,
    )
    for minutes, text in [
        (120, "Looking."),
        (90, "## Identified\n\nBad deploy."),
        (60, "Rolling back."),
        (10, "**Monitoring** now."),
    ]:
        IncidentNote.objects.create(
            incident=incident, note=text, posted_at=now - timedelta(minutes=minutes), upstream_id=f"n{minutes}"
        )
    html = client.get("/incidents/inc-9/").content.decode()
    notes = html.split('class="note"')[1:]
    assert [("Identified" in note.split("</div>")[0], "Monitoring" in note.split("</div>")[0]) for note in notes] == [
        (False, False),
        (True, False),
        (True, False),
        (False, True),
    ], "a note without a state of its own keeps the last one announced"
    assert html.count('data-format="both"') == 5, "every note, and the declaration, shows absolute and relative time"
    assert 'data-duration="open" data-seconds="7500"' in html and "2 h 5 min" in html, "open for, counted from declaredAt"
    assert "No state history of this incident has been read" in html, "the heading rule, said on the page"
    assert 'href="https://oneuptime.example/dashboard/proj-1/incidents/inc-9"' in html
    assert 'data-color="#FACC15"' in html, "a state we have no tone for keeps upstream's colour"


def test_restarting_the_demo_keeps_its_admin_password_and_everyones_sessions(settings, tmp_path):
    from dashboard import demo

    settings.DATA_DIR = tmp_path
    password = demo.demo_password()
    user = get_user_model().objects.get(username=demo.DEMO_USER)
    session_hash = user.get_session_auth_hash()
    assert demo.demo_password() == password
    user.refresh_from_db()
    assert user.check_password(password) and user.get_session_auth_hash() == session_hash, "nobody is logged out"


def test_the_wall_has_a_tile_per_pipeline_failures_first_with_what_tells_runs_apart(client):
    now = timezone.now()

    def build(upstream_id, repository, status, *, minutes_ago, took=None, **fields):
        started = now - timedelta(minutes=minutes_ago)
        return make_event(
            upstream_id,
            timestamp=started,
            target="build",
            operation="failed" if status == EventStatus.FAILED else "completed",
            project="borealis",
            repository=repository,
            name="Release",
            status=status,
            updated_at=started + timedelta(minutes=took) if took else None,
            **fields,
        )

    build("old-pass", "api", EventStatus.COMPLETED, minutes_ago=300, took=10)
    build("older-pass", "api", EventStatus.COMPLETED, minutes_ago=400, took=12)
    build("new-fail", "api", EventStatus.FAILED, minutes_ago=60, took=3, resources=["https://ci.example/job/api/412"])
    build("web-pass", "web", EventStatus.COMPLETED, minutes_ago=30, took=5, ref="main", commits=[{"id": "abcdef1234567"}])
    build("cli-run", "cli", EventStatus.LIVE, minutes_ago=2, progress=40)
    build("cli-pass", "cli", EventStatus.COMPLETED, minutes_ago=90, took=8)
    build("db-stale", "db", EventStatus.STALE, minutes_ago=50, progress=70)
    pipelines.rebuild()  # made behind the sync's back: derived here as the sync would
    screen = screens.screen_named("Borealis TV", project="borealis")
    html = client.get(f"/wall/?key={screen.key}").content.decode()
    tiles = [part.split('"')[0] for part in html.split('data-event-id="')[1:]]
    assert tiles[:4] == ["new-fail", "db-stale", "cli-run", "web-pass"], "one tile per pipeline: failing, stalled, then by name"
    assert "#412" in html and "⎇ main" in html and "abcdef12" in html and "passed in 5 min" in html
    assert f'datetime="{(now - timedelta(minutes=2) + timedelta(minutes=8)).isoformat()}"' in html, "ends as its last run took"
    assert 'id="wall-level" class="wall-level all-clear-label" data-level="red"' in html and "1 FAILING" in html


def test_the_worst_incident_comes_first_on_the_wall(client):
    now = timezone.now()
    for upstream_id, severity, state, hours in [
        ("minor-new", "Minor", "Created", 1),
        ("critical-old-acked", "Critical", "Acknowledged", 9),
        ("critical-new", "Critical", "Created", 2),
        ("major", "Major", "Created", 3),
    ]:
        Incident.objects.create(
            upstream_id=upstream_id,
            title=upstream_id,
            severity=severity,
            state=state,
            declared_at=now - timedelta(hours=hours),
            synced_at=now,
        )
    screen = screens.screen_named("Ops TV")
    html = client.get(f"/wall/?key={screen.key}").content.decode()
    order = [part.split('"')[0] for part in html.split('data-incident-id="')[1:]]
    assert order == ["critical-new", "critical-old-acked", "major", "minor-new"]
    assert "(2 critical)" in html


def test_a_thousand_open_incidents_are_counted_in_full_and_only_the_worst_are_loaded(client, person):
    """Counts in SQL, cards for the worst only: the summary and the strip never load every open incident."""
    now = timezone.now()
    Incident.objects.bulk_create(
        Incident(upstream_id=f"minor-{n}", title=f"minor {n}", severity="Minor", declared_at=now, synced_at=now)
        for n in range(1000)
    )
    Incident.objects.create(
        upstream_id="the-worst", title="the worst", severity=" critical ", declared_at=now - timedelta(days=2), synced_at=now
    )
    html = client.get("/").content.decode()
    cards = [part.split('"')[0] for part in html.split('data-incident-id="')[1:]]
    assert cards[0] == "the-worst" and len(cards) == feeds.OPEN_INCIDENTS_SHOWN
    assert "1001</strong> open incidents" in html and ", 1 critical" in html
    assert f"These are the {feeds.OPEN_INCIDENTS_SHOWN} worst of 1001 open incidents." in html
    screen = screens.screen_named("Ops TV")
    wall = client.get(f"/wall/?key={screen.key}").content.decode()
    assert wall.split('data-incident-id="')[1].startswith("the-worst")
    assert f'data-extra="{1001 - feeds.WALL_ROWS["incidents"]}"' in wall and "(1 critical)" in wall


def test_the_link_to_oneuptime_never_carries_the_api_urls_credentials(settings):
    settings.ONEUPTIME_API_URL = "https://ops:s3cret@oneuptime.example/api"
    incident = Incident(upstream_id="inc-1", project_id="proj-1")
    assert pages.oneuptime_url(incident) == "https://oneuptime.example/dashboard/proj-1/incidents/inc-1"

"""Upstream ids, names and incident fields are hostile: they never become markup and never break a page.

The fragments are checked without a browser here (test_browser.py pushes the same values into
chromium): every element and attribute in them must be one the templates put there.
"""

import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from config.asgi import application
from dashboard.live import incident_clock, pipelines, push, screens
from dashboard.models import Event, EventStatus, Incident, IncidentNote, IncidentStateChange, Transition, TransitionKind

pytestmark = pytest.mark.django_db(transaction=True)

# What the review pushed: an id that closes its attribute and adds an auto-submitting htmx form.
HOSTILE_ID = 'x" hx-swap-oob=beforeend:main><form hx-post=/admin/ hx-trigger=load><b x="'
HOSTILE_TEXT = '"><form hx-post=/admin/ hx-trigger=load><img src=x onerror=alert(1)>'
SWAPS = {"afterbegin:#feed", "afterbegin:#live-list"}  # the only out-of-band swaps push.py sends


class Elements(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def assert_inert(html: str) -> list[tuple[str, dict]]:
    """No element or attribute the templates do not make: no form, no script, no htmx verb, no handler."""
    elements = Elements(html).found
    for tag, attrs in elements:
        assert tag not in {"form", "script", "img", "iframe", "input", "button", "b"}, (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            assert name in {"hx-swap-oob"} or not name.startswith(("hx-", "ws-")), (tag, attrs)
            assert name != "hx-swap-oob" or value in SWAPS, (tag, attrs)
        assert set(attrs) <= KNOWN_ATTRIBUTES, (tag, attrs)
    return elements


KNOWN_ATTRIBUTES = {
    "id", "class", "href", "rel", "datetime", "max", "value", "hx-swap-oob",
    "data-event-id", "data-live", "data-finished", "data-panel", "data-incident-id", "data-note-id", "data-color",
    "data-cursor", "data-tone", "data-level", "data-format", "data-progress", "data-fit-item", "data-extra",
    "data-more", "data-more-label", "hidden", "role", "aria-hidden", "aria-label", "aria-valuenow", "aria-valuemin",
    "aria-valuemax", "data-duration", "data-seconds", "data-state-change", "data-state", "data-note-state",
    "data-state-name", "data-states-fallback", "data-change-event-id", "data-none", "aria-labelledby",
    "data-pipeline", "data-pipeline-state", "data-rerunning", "data-run-id", "data-run-result",
    "data-fit-rank", "viewbox", "preserveaspectratio", "x", "y", "width", "height", "d", "title",
    "points", "cx", "cy", "r", "x1", "x2", "y1", "y2",
}  # fmt: skip


def make_event(upstream_id, **fields):
    now = timezone.now()
    values = {
        "timestamp": now - timedelta(minutes=1),
        "operation": "completed",
        "target": "build",
        "project": HOSTILE_TEXT,
        "repository": HOSTILE_TEXT,
        "name": HOSTILE_TEXT,
        "ref": HOSTILE_TEXT,
        "subject_id": HOSTILE_TEXT,
        "progress": 40,
        "raw": {},
        "first_seen_at": now,
        "synced_at": now,
        "progress_changed_at": now,
        "status": EventStatus.LIVE,
    } | fields
    event = Event.objects.create(upstream_id=upstream_id, **values)
    pipelines.refresh(pipelines.keys_of([event]))  # as the sync does in the transaction that stores it
    return event


def make_incident(upstream_id, **fields):
    values = {
        "title": HOSTILE_TEXT,
        "state": HOSTILE_TEXT,
        "state_color": '#fff" onclick="x',
        "severity": HOSTILE_TEXT,
        "incident_number_with_prefix": HOSTILE_TEXT,
        "description": HOSTILE_TEXT,
        "declared_at": timezone.now(),
        "synced_at": timezone.now(),
    } | fields
    incident = Incident.objects.create(upstream_id=upstream_id, **values)
    IncidentNote.objects.create(
        upstream_id=f"{upstream_id}-note",
        incident=incident,
        note=HOSTILE_TEXT,
        created_by_name=HOSTILE_TEXT,
        posted_at=timezone.now(),
    )
    IncidentStateChange.objects.create(
        upstream_id=f"{upstream_id}-state",
        incident_upstream_id=upstream_id,
        state_name=HOSTILE_TEXT,
        state_color='#fff" onclick="x',
        root_cause=HOSTILE_TEXT,
        starts_at=timezone.now() - timedelta(minutes=5),
        synced_at=timezone.now(),
    )
    incident_clock.rebuild([upstream_id], now=timezone.now())
    return incident


def test_a_hostile_event_id_stays_text_in_every_pushed_fragment():
    screens.screen_named("Office TV", project=HOSTILE_TEXT)
    event = make_event(HOSTILE_ID)
    now = timezone.now()
    changes = [
        Transition(kind=kind, upstream_id=event.upstream_id, event=event, at=now)
        for kind in (TransitionKind.EVENT_NEW, TransitionKind.BECAME_LIVE)
    ]
    messages = push.render_messages(changes)
    assert {message.group for message in messages} >= {push.EVENTS, push.events_group(HOSTILE_TEXT)}
    for message in messages:
        ids = [attrs.get("data-event-id") or attrs.get("data-run-id") for _, attrs in assert_inert(message.html)]
        shown = [shown_id for shown_id in ids if shown_id]  # a pipeline page names its runs by data-run-id
        if 'id="summary"' in message.html:
            continue  # the dashboards' summary strip: counts only
        assert shown and set(shown) == {HOSTILE_ID}, "the id is still shown, as text"
    rows = [attrs["id"] for _, attrs in Elements(messages[0].html).found if "id" in attrs]
    assert len(rows) == 2 and all(row.replace("-", "").replace("_", "").isalnum() for row in rows), rows


def test_a_progressing_event_and_the_wall_panels_stay_inert():
    event = make_event(HOSTILE_ID)
    changes = [Transition(kind=TransitionKind.PROGRESSED, upstream_id=event.upstream_id, event=event, at=timezone.now())]
    for message in push.render_messages(changes):
        assert_inert(message.html)


def test_hostile_incident_fields_and_ids_stay_inert_on_every_panel():
    incident = make_incident('inc/1" hx-get=/admin/ hx-trigger=load x="')
    changes = [
        Transition(kind=TransitionKind.INCIDENT_CHANGED, upstream_id=incident.upstream_id, incident=incident, at=timezone.now())
    ]
    messages = push.render_messages(changes)
    # the dashboard's panel, the wall's panel, the incident's own timeline, the summary strip, the wall's level
    assert len(messages) == 5
    for message in messages:
        assert_inert(message.html)


def test_an_incident_id_with_a_slash_does_not_take_the_pages_down(client, caplog):
    user = get_user_model().objects.create_user("oncall", password="x")
    client.force_login(user)
    slashed = f"a/{uuid.uuid4()}"  # each test process logs an id only once
    make_incident(slashed)
    make_incident("plain-1")
    screen = screens.screen_named("Office TV")
    for path in ("/", "/wall/", f"/wall/?key={screen.key}"):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert f'data-incident-id="{slashed}"' in html and 'href="/incidents/plain-1/"' in html
        assert "/incidents/a/" not in html and "/incidents/a%2F" not in html
    unlinkable = [record for record in caplog.records if slashed in record.getMessage()]
    assert len(unlinkable) == 1, "logged once, not on every render"


def test_an_incident_id_with_a_slash_does_not_close_the_walls_socket():
    make_incident("a/b")
    screen = screens.screen_named("Office TV")
    user = get_user_model().objects.create_user("oncall", password="x")
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()

    async def scenario():
        for path, headers in (
            (f"/ws/live/?page=wall&screen={screen.key}", []),
            ("/ws/live/?page=dashboard", [(b"cookie", cookie)]),
        ):
            socket = WebsocketCommunicator(
                application, path, headers=[(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), *headers]
            )
            assert (await socket.connect())[0]
            snapshot = await socket.receive_output(timeout=5)
            assert snapshot["type"] == "websocket.send" and 'data-incident-id="a/b"' in snapshot["text"], snapshot
            await socket.disconnect()

    async_to_sync(scenario)()


def test_group_names_cannot_collide():
    names = ["team a", "team_a", "team.a", "team/a", "Team_A", "x" * 200, "x" * 199 + "y"]
    groups = {push.events_group(name) for name in names}
    assert len(groups) == len(names)
    walls = {push.wall_group(name, 1.0) for name in [*names, ""]} | {push.wall_group("team_a", 1.5)}
    assert len(walls) == len(names) + 2
    assert len({push.incident_group(name) for name in names}) == len(names)
    for group in groups | walls:
        assert len(group) < 100 and group.replace(".", "").replace("-", "").replace("_", "").isalnum(), group

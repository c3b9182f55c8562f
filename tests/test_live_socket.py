"""/ws/live/ through the real ASGI stack: origin check, session or kiosk token, snapshot, then deltas.

Each scenario runs in one event loop; database work runs through sync_to_async, as in daphne, so the
sync's after-commit push reaches the sockets through the real channel layer (in memory, or Redis).
"""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.signals import template_rendered

from config.asgi import application
from dashboard.live import screens
from dashboard.simulators import oneuptime
from dashboard.upstreams.hth import sync
from dashboard.upstreams.hth.client import HthClient
from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.upstreams.oneuptime.client import OneUptimeClient

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost:8000")
HOST = (b"host", b"localhost:8000")


@pytest.fixture
def session_cookie():
    user = get_user_model().objects.create_user("oncall", password="x")
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
def hth_client(hth_sim):
    return HthClient(base_url=hth_sim.url, company_key=hth_sim.company_key, account_key=hth_sim.account_key)


def run(scenario):
    async_to_sync(scenario)()


def socket(path: str, *headers) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=[ORIGIN, HOST, *headers])


async def sync_events(client):
    from django.utils import timezone

    await sync_to_async(sync.sync_events)(client=client, now=timezone.now())


async def refresh(client):
    from django.utils import timezone

    await sync_to_async(sync.refresh_unfinished_events)(client=client, now=timezone.now())


async def receive_until(communicator, needle: str, timeout: float = 5) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no message containing {needle!r}"
        message = await communicator.receive_from(timeout=remaining)
        if needle in message:
            return message


def test_a_dashboard_socket_gets_a_snapshot_then_live_changes(session_cookie, hth_sim, hth_client):
    async def scenario():
        hth_sim.generate(60)  # more than a page: the snapshot carries the "older events" link too
        await sync_events(hth_client)
        communicator = socket("/ws/live/?page=dashboard", (b"cookie", session_cookie))
        connected, _ = await communicator.connect()
        assert connected
        snapshot = await communicator.receive_from()
        assert 'id="live-list"' in snapshot and 'id="feed"' in snapshot and 'id="open-incidents"' in snapshot
        assert 'id="feed-more"' in snapshot

        build = hth_sim.start_build(project="luotsi", repository="chef", name="Development")
        await sync_events(hth_client)
        arrived = await receive_until(communicator, f'data-event-id="{build}"')
        assert 'hx-swap-oob="afterbegin:#feed"' in arrived and 'hx-swap-oob="afterbegin:#live-list"' in arrived

        hth_sim.set_progress(build, 42)
        await refresh(hth_client)
        progressed = await receive_until(communicator, 'value="42"')
        assert f'id="live-{build}"' in progressed
        await communicator.disconnect()

    run(scenario)


def test_filters_apply_to_pushed_events(session_cookie, hth_sim, hth_client):
    async def scenario():
        await sync_events(hth_client)
        chef_only = socket("/ws/live/?page=dashboard&project=chef", (b"cookie", session_cookie))
        assert (await chef_only.connect())[0]
        await chef_only.receive_from()
        luotsi = hth_sim.add_event(target="push", operation="created", project="luotsi")
        chef = hth_sim.add_event(target="push", operation="created", project="chef")
        await sync_events(hth_client)
        message = await receive_until(chef_only, "data-event-id")
        assert chef["id"] in message and luotsi["id"] not in message
        while not await chef_only.receive_nothing(timeout=0.5):  # the summary strip, which every dashboard gets
            assert luotsi["id"] not in await chef_only.receive_from()
        await chef_only.disconnect()

    run(scenario)


def test_a_socket_without_a_session_or_from_a_foreign_origin_is_refused(session_cookie):
    async def scenario():
        anonymous = socket("/ws/live/?page=dashboard")
        assert (await anonymous.connect())[0] is False
        foreign = WebsocketCommunicator(
            application, "/ws/live/", headers=[(b"origin", b"https://evil.example"), (b"cookie", session_cookie)]
        )
        assert (await foreign.connect())[0] is False
        no_key_wall = socket("/ws/live/?page=wall")
        assert (await no_key_wall.connect())[0] is False

    run(scenario)


@pytest.mark.parametrize(
    "origin, scheme, forwarded_proto, accepted",
    [
        ("http://localhost:8000", "ws", None, True),
        ("http://localhost:9999", "ws", None, False),  # another port is another site
        ("https://localhost:8000", "ws", None, False),  # so is another scheme
        ("http://localhost:8000", "wss", None, False),
        ("https://localhost:8000", "wss", None, True),
        ("https://localhost:8000", "ws", b"https", True),  # TLS ended at our proxy
        ("http://127.0.0.1:8000", "ws", None, False),  # an allowed host name, but not this page's
    ],
)
def test_the_origin_must_be_this_site_by_scheme_host_and_port(
    session_cookie, settings, origin, scheme, forwarded_proto, accepted
):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"origin", origin.encode()), HOST, (b"cookie", session_cookie)]
    if forwarded_proto:
        headers.append((b"x-forwarded-proto", forwarded_proto))

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/live/?page=dashboard", headers=headers)
        communicator.scope["scheme"] = scheme
        connected, _ = await communicator.connect()
        assert connected is accepted
        if connected:
            await communicator.disconnect()

    run(scenario)


def test_a_kiosk_socket_works_without_a_session_and_stops_when_revoked():
    screen = screens.screen_named("Office TV")

    async def scenario():
        wall = socket(f"/ws/live/?page=wall&screen={screen.key}")
        assert (await wall.connect())[0]
        snapshot = await wall.receive_from()
        assert 'id="wall-builds"' in snapshot and 'id="wall-incidents"' in snapshot and 'id="wall-status"' in snapshot

        await sync_to_async(screens.revoke)(screen)
        closed = await wall.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4403}

        again = socket(f"/ws/live/?page=wall&screen={screen.key}")
        assert (await again.connect())[0]
        assert (await again.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4403}

    run(scenario)


def test_a_note_edited_upstream_reaches_the_open_timeline(session_cookie, settings):
    with oneuptime.serve(port=0, seed=2) as sim:
        settings.ONEUPTIME_API_URL, settings.ONEUPTIME_API_KEY = sim.url, sim.api_key
        client = OneUptimeClient.from_settings()
        incident = sim.add_incident("Checkout errors")
        note = sim.add_note(incident["_id"], "Investigating.")

        async def scenario():
            from django.utils import timezone

            await sync_to_async(note_sync.sync_notes)(client=client, now=timezone.now())
            timeline = socket(f"/ws/live/?page=incident&incident={incident['_id']}", (b"cookie", session_cookie))
            assert (await timeline.connect())[0]
            assert f'data-note-id="{note["_id"]}"' in await timeline.receive_from()
            sim.edit_note(note["_id"], note="Fixed by **rollback** <script>alert(1)</script>")
            await sync_to_async(note_sync.sync_notes)(client=client, now=timezone.now())
            message = await receive_until(timeline, "rollback")
            assert "<strong>rollback</strong>" in message and "<script>" not in message
            await timeline.disconnect()

        run(scenario)


def test_an_incident_deleted_upstream_leaves_the_open_dashboards_panel(session_cookie, settings):
    with oneuptime.serve(port=0, seed=2) as sim:
        settings.ONEUPTIME_API_URL, settings.ONEUPTIME_API_KEY = sim.url, sim.api_key
        client = OneUptimeClient.from_settings()
        doomed = sim.add_incident("Declared by mistake")
        sim.add_incident("Checkout errors")

        async def scenario():
            from django.utils import timezone

            await sync_to_async(note_sync.sync_notes)(client=client, now=timezone.now())
            dashboard = socket("/ws/live/?page=dashboard", (b"cookie", session_cookie))
            assert (await dashboard.connect())[0]
            assert "Declared by mistake" in await receive_until(dashboard, 'id="open-incidents"')
            sim.delete_incident(doomed["_id"])
            await sync_to_async(note_sync.sync_notes)(client=client, now=timezone.now())
            panel = await receive_until(dashboard, 'id="open-incidents"')
            assert "Checkout errors" in panel and "Declared by mistake" not in panel
            await dashboard.disconnect()

        run(scenario)


def test_a_change_is_rendered_once_however_many_sockets_listen(session_cookie, hth_sim, hth_client):
    rendered = []

    def count(sender, template, **kwargs):
        rendered.append(template.name)

    async def scenario():
        await sync_events(hth_client)
        sockets = [socket("/ws/live/?page=dashboard", (b"cookie", session_cookie)) for _ in range(5)]
        for communicator in sockets:
            assert (await communicator.connect())[0]
            await communicator.receive_from()
        template_rendered.connect(count)
        try:
            hth_sim.add_event(target="push", operation="created", project="luotsi")
            await sync_events(hth_client)
            for communicator in sockets:
                await receive_until(communicator, "data-event-id")
        finally:
            template_rendered.disconnect(count)
        for communicator in sockets:
            await communicator.disconnect()

    run(scenario)
    rows = [name for name in rendered if name == "event-row"]
    assert len(rows) == 1, f"rendered {len(rows)} times for 5 sockets"


@pytest.mark.skipif(not settings.REDIS_URL, reason="the in-memory layer has no read timeout to outlast")
def test_an_idle_socket_on_redis_is_not_closed(session_cookie):
    """redis-py's default 5 s read timeout used to close sockets whose layer had been idle that long."""

    async def scenario():
        communicator = socket("/ws/live/?page=dashboard", (b"cookie", session_cookie))
        assert (await communicator.connect())[0]
        await communicator.receive_from()
        assert await communicator.receive_nothing(timeout=8), "the server closed or sent something while idle"
        await communicator.disconnect()

    run(scenario)


@pytest.mark.skipif(not settings.REDIS_URL, reason="the in-memory layer has no connection pool")
def test_a_burst_of_walls_reconnecting_at_once_is_served(settings):
    """After a deploy every wall reconnects at once; redis-py's default pool of 100 refused the rest."""
    settings.LIVE_MAX_SOCKETS_PER_KEY = 150  # one key stands in for 150 screens
    screen = screens.screen_named("Office TV")

    async def scenario():
        walls = [socket(f"/ws/live/?page=wall&screen={screen.key}") for _ in range(150)]
        results = await asyncio.gather(*(wall.connect(timeout=60) for wall in walls))
        assert all(connected for connected, _ in results)
        await asyncio.gather(*(wall.disconnect() for wall in walls))

    run(scenario)

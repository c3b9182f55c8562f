"""Who may go on listening: a socket ends with its login or its screen, and nobody holds too many.

Real sockets through the real ASGI stack (tests/test_live_socket.py has the helpers), and the real
logout view, admin and models to end things.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from config.asgi import application
from dashboard.live import consumers, limits, screens
from tests.test_live_socket import HOST, ORIGIN, run

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_REQUIRED, REVOKED, TOO_MANY = 4401, 4403, 4429


def browser_of(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def cookie(browser: Client) -> tuple[bytes, bytes]:
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


async def open_socket(path: str, *headers) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, HOST, *headers])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def snapshot_of(communicator):
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.send", message
    return message


async def closed_with(communicator, timeout: float = 5) -> int:
    while True:
        message = await communicator.receive_output(timeout=timeout)
        if message["type"] == "websocket.close":
            return message["code"]


@pytest.fixture
def oncall():
    return get_user_model().objects.create_user("oncall", password="an old pass phrase")


def test_logging_out_closes_that_sessions_sockets_and_no_others(oncall):
    laptop, phone = browser_of(oncall), browser_of(oncall)

    async def scenario():
        on_laptop = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        on_phone = await open_socket("/ws/live/?page=dashboard", cookie(phone))
        await snapshot_of(on_laptop), await snapshot_of(on_phone)
        logout = await sync_to_async(laptop.post)("/accounts/logout/")
        assert logout.status_code == 302
        assert await closed_with(on_laptop) == LOGIN_REQUIRED
        assert await on_phone.receive_nothing(timeout=1), "the phone is still logged in"
        await on_phone.disconnect()

    run(scenario)


def test_deactivating_a_user_closes_their_sockets(oncall):
    laptop = browser_of(oncall)

    async def scenario():
        dashboard = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        await snapshot_of(dashboard)
        oncall.is_active = False
        await sync_to_async(oncall.save)()
        assert await closed_with(dashboard) == LOGIN_REQUIRED

    run(scenario)


def test_a_password_change_closes_the_sockets_of_the_old_sessions(oncall):
    laptop = browser_of(oncall)

    async def scenario():
        wall = await open_socket("/ws/live/?page=wall", cookie(laptop))
        await snapshot_of(wall)
        oncall.set_password("a new pass phrase")
        await sync_to_async(oncall.save)()
        assert await closed_with(wall) == LOGIN_REQUIRED

    run(scenario)


def test_a_login_elsewhere_closes_nothing(oncall):
    laptop = browser_of(oncall)

    async def scenario():
        dashboard = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        await snapshot_of(dashboard)
        await sync_to_async(browser_of)(oncall)  # saves last_login
        login = await sync_to_async(Client().post)("/accounts/login/", {"username": "oncall", "password": "an old pass phrase"})
        assert login.status_code == 302
        assert await dashboard.receive_nothing(timeout=1)
        await dashboard.disconnect()

    run(scenario)


def test_the_heartbeat_closes_a_socket_whose_session_is_gone(oncall, monkeypatch):
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.3)
    laptop = browser_of(oncall)

    async def scenario():
        dashboard = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        await snapshot_of(dashboard)
        await sync_to_async(Session.objects.all().delete)()  # as clearsessions would, announced by no signal
        assert await closed_with(dashboard) == LOGIN_REQUIRED

    run(scenario)


@pytest.mark.parametrize("how", ["delete view", "delete action"])
def test_deleting_a_screen_in_the_admin_closes_its_sockets(how):
    screen = screens.screen_named("Office TV")
    admin = browser_of(get_user_model().objects.create_superuser("admin", "admin@example.com", "a long pass phrase"))

    def delete():
        if how == "delete view":
            return admin.post(f"/admin/dashboard/screen/{screen.pk}/delete/", {"post": "yes"})
        return admin.post(
            "/admin/dashboard/screen/", {"action": "delete_selected", "_selected_action": [screen.pk], "post": "yes"}
        )

    async def scenario():
        wall = await open_socket(f"/ws/live/?page=wall&screen={screen.key}")
        await snapshot_of(wall)
        assert (await sync_to_async(delete)()).status_code == 302
        assert await closed_with(wall) == REVOKED

    run(scenario)


def test_a_kiosk_key_holds_at_most_its_limit_of_sockets_and_the_newest_gets_in(settings):
    """Whoever opened the link's sockets first cannot keep the TV out: the oldest one makes room."""
    settings.LIVE_MAX_SOCKETS_PER_KEY = 2
    screen = screens.screen_named("Office TV")
    path = f"/ws/live/?page=wall&screen={screen.key}"

    async def scenario():
        first, second = await open_socket(path), await open_socket(path)
        await snapshot_of(first), await snapshot_of(second)
        third = await open_socket(path)
        await snapshot_of(third)
        assert await closed_with(first) == TOO_MANY, "the oldest made room"
        assert await second.receive_nothing(timeout=0.5)
        await second.disconnect()
        fourth = await open_socket(path)
        await snapshot_of(fourth)  # a freed place is free at once
        assert await third.receive_nothing(timeout=0.5), "nobody had to make room"
        await asyncio.gather(third.disconnect(), fourth.disconnect())

    run(scenario)


def test_a_displaced_socket_whose_notice_was_lost_closes_at_its_next_heartbeat(settings, monkeypatch):
    settings.LIVE_MAX_SOCKETS_PER_KEY = 1
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.3)
    screen = screens.screen_named("Office TV")

    async def scenario():
        wall = await open_socket(f"/ws/live/?page=wall&screen={screen.key}")
        await snapshot_of(wall)
        # A newer socket took the place in a process whose notice never arrived (say, it died right after).
        assert await limits.claim(f"screen.{screen.pk}", "elsewhere.channel", limit=1) != []
        assert await closed_with(wall, timeout=15) == TOO_MANY

    run(scenario)


def test_a_person_holds_at_most_their_limit_of_sockets(settings, oncall):
    settings.LIVE_MAX_SOCKETS_PER_USER = 2
    laptop, phone = browser_of(oncall), browser_of(oncall)

    async def scenario():
        first = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        second = await open_socket("/ws/live/?page=wall", cookie(phone))
        await snapshot_of(first), await snapshot_of(second)
        third = await open_socket("/ws/live/?page=dashboard", cookie(laptop))
        await snapshot_of(third)
        assert await closed_with(first) == TOO_MANY, "the oldest made room"
        await asyncio.gather(second.disconnect(), third.disconnect())

    run(scenario)

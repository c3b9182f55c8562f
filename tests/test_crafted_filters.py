"""Filter values from a URL are anyone's to craft: nonsense is ignored, never a 500 or a 1011.

Run it on PostgreSQL too (DATABASE_URL): a NUL character is harmless to SQLite but an error there.
"""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from config.asgi import application
from tests.test_pages import make_event

pytestmark = pytest.mark.django_db
SOCKET = pytest.mark.django_db(transaction=True)  # the consumer reads the database from another thread

CRAFTED = [
    "before=2024-13-45T00:00~1",
    "before=2024-01-01T00:00~%C2%B2",  # "²" is a digit to str.isdigit(), not to int()
    "before=2024-01-01T00:00~99999999999999999999999",
    "before=9999-12-31T23:59:59-23:59~1",
    "before=~",
    "since=9999-12-31T23:59:59-23:59",
    "until=0001-01-01T00:00:00%2B23:59",
    "since=2024-13-45T00:00",
    "q=%00",
    "q=a%00b&project=%00&repository=%00&target=%00&operation=%00&person=%00",
]


@pytest.fixture
def browser():
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create_user("oncall", password="x"))
    return client


@pytest.mark.parametrize("query", CRAFTED)
def test_a_crafted_filter_is_ignored_on_the_page(browser, query):
    make_event("a", name="release")
    for headers in ({}, {"HX-Request": "true"}):  # the page, and the "older events" fragment
        response = browser.get(f"/?{query}", headers=headers)
        assert response.status_code == 200, (query, headers)


def test_a_filter_keeps_its_meaning_without_the_nul(browser):
    make_event("a", name="release")
    make_event("b", name="hotfix")
    html = browser.get("/?q=rel%00ease").content.decode()
    assert 'data-event-id="a"' in html and 'data-event-id="b"' not in html


@SOCKET
@pytest.mark.parametrize("query", [q for q in CRAFTED if not q.startswith("before")])
def test_a_crafted_filter_is_ignored_on_the_socket(browser, query):
    make_event("a", name="release")
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario():
        socket = WebsocketCommunicator(
            application,
            f"/ws/live/?page=dashboard&{query}",
            headers=[(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), (b"cookie", cookie)],
        )
        assert (await socket.connect())[0]
        snapshot = await socket.receive_output(timeout=5)
        assert snapshot["type"] == "websocket.send" and 'id="feed"' in snapshot["text"], snapshot
        await socket.disconnect()

    async_to_sync(scenario)()


@SOCKET
def test_a_query_string_that_is_not_utf8_is_ignored_on_the_socket(browser):
    make_event("a", name="release")
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario():
        socket = WebsocketCommunicator(
            application,
            "/ws/live/",
            headers=[(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), (b"cookie", cookie)],
        )
        socket.scope["query_string"] = b"page=dashboard&q=\xff\xfe&project=\xc3"  # raw bytes, as a client may send
        assert (await socket.connect())[0]
        snapshot = await socket.receive_output(timeout=5)
        assert snapshot["type"] == "websocket.send" and 'id="feed"' in snapshot["text"], snapshot
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_crafted_incident_id_is_not_found(browser):
    assert browser.get("/incidents/%00/").status_code == 404


@SOCKET
def test_a_crafted_incident_id_on_the_socket_is_not_found(browser):
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario():
        socket = WebsocketCommunicator(
            application,
            "/ws/live/?page=incident&incident=%00",
            headers=[(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"), (b"cookie", cookie)],
        )
        assert (await socket.connect())[0]
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}

    async_to_sync(scenario)()

"""A page that sees a pushed number skipped asks for a snapshot at once, and says so until it has one.

Playwright sits on the wall's real socket to the real server: it adds one numbered message that skips
ahead (as a full channel would leave it), and holds the server's snapshot answer for a moment, so the
banner can be seen saying why the wall is not live.
"""

import re

import pytest

from dashboard.live import push, screens
from tests.test_browser import browser, new_page, ou_sim, server, wait_live  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NUMBER = re.compile(r"^<!--seq (\S+) (\d+)-->")
SNAPSHOT = re.compile(r"^<!--snapshot ([^>]*)-->")


class Tap:
    """Passes the wall's socket through, noting the wall group's last number and what the page asks."""

    def __init__(self, group: str):
        self.group, self.last, self.asked, self.holding, self.held = group, None, [], False, []

    def route(self, page_side):
        self.page_side = page_side
        self.server_side = page_side.connect_to_server()
        self.server_side.on_message(self.from_server)
        page_side.on_message(self.from_page)

    def from_server(self, message):
        if isinstance(message, str) and (snapshot := SNAPSHOT.match(message)):
            numbers = dict(pair.split("=") for pair in snapshot[1].split())
            self.last = int(numbers[self.group])
            if self.holding:
                self.held.append(message)
                return
        elif isinstance(message, str) and (number := NUMBER.match(message)) and number[1] == self.group:
            self.last = int(number[2])
        self.page_side.send(message)

    def from_page(self, message):
        self.asked.append(message)
        self.server_side.send(message)

    def release(self):
        self.holding = False
        for message in self.held:
            self.page_side.send(message)


def test_a_gap_in_the_pushed_numbers_brings_a_snapshot_and_the_banner_says_so_meanwhile(browser, server):  # noqa: F811
    screen = screens.screen_named("Office TV")
    tap = Tap(push.wall_group(screen.project, screen.text_scale))
    page = new_page(browser, width=1920, height=1080)
    page.route_web_socket(re.compile(r"/ws/live/"), tap.route)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)
    assert tap.last is not None, "the snapshot carries the numbers it is as new as"

    tap.holding = True
    skipped = tap.last + 3
    tap.page_side.send(f'<!--seq {tap.group} {skipped}--><span id="heartbeat" hidden data-at="gap"></span>')
    page.wait_for_selector("#stale-banner:not([hidden])", timeout=5000)
    assert "missed an update" in page.inner_text("#stale-banner")
    for _ in range(50):  # the tap sees messages while Playwright waits
        if tap.held:
            break
        page.wait_for_timeout(100)
    assert any('"want":"snapshot"' in message for message in tap.asked), tap.asked
    assert tap.held, "the server answered the request with a snapshot"
    assert page.is_visible("#stale-banner"), "still saying so while the snapshot is on its way"

    tap.release()
    page.wait_for_selector("#stale-banner", state="hidden", timeout=5000)
    wait_live(page)
    assert page.console_errors == []


def test_a_fragment_older_than_one_the_page_has_never_swaps_over_it(browser, server):  # noqa: F811
    """Two processes pushing to one group may deliver adjacent numbers swapped: the late, older one is dropped."""
    screen = screens.screen_named("Office TV")
    tap = Tap(push.wall_group(screen.project, screen.text_scale))
    page = new_page(browser, width=1920, height=1080)
    page.route_web_socket(re.compile(r"/ws/live/"), tap.route)
    page.goto(f"{server.url}/wall/?key={screen.key}")
    wait_live(page)

    tap.holding = True  # the snapshot the gap asks for stays away: the page shows what the fragments left
    tap.page_side.send(f'<!--seq {tap.group} {tap.last + 2}--><span id="heartbeat" hidden data-at="newer"></span>')
    tap.page_side.send(f'<!--seq {tap.group} {tap.last + 1}--><span id="heartbeat" hidden data-at="older"></span>')
    page.wait_for_selector('#heartbeat[data-at="newer"]', state="attached", timeout=5000)
    page.wait_for_timeout(1000)
    assert page.get_attribute("#heartbeat", "data-at") != "older"
    tap.release()
    page.wait_for_selector("#stale-banner", state="hidden", timeout=5000)
    assert page.console_errors == []

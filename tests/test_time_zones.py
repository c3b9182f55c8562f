"""A screen's time zone reaches the wall's script as Intl.DateTimeFormat's timeZone: only names browsers accept."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import Screen, browser_time_zones
from tests.test_browser import browser  # noqa: F401 -- the shared chromium fixture


@pytest.mark.parametrize("name", ["posix/Europe/Helsinki", "right/UTC", "posixrules", "localtime", "Europe/helsinki", "Nowhere"])
def test_a_zone_browsers_refuse_is_refused(name):
    with pytest.raises(ValidationError, match="is not a time zone"):
        Screen(name="TV", time_zone=name).clean()


@pytest.mark.parametrize("name", ["Europe/Helsinki", "UTC", "America/Argentina/Buenos_Aires", "US/Eastern"])
def test_an_iana_zone_is_accepted(name):
    Screen(name="TV", time_zone=name).clean()


@pytest.mark.django_db
def test_wall_link_refuses_a_posix_zone():
    with pytest.raises(CommandError, match="posix/Europe/Helsinki"):
        call_command("wall_link", "Lobby", "--time-zone", "posix/Europe/Helsinki")


@pytest.mark.browser
def test_chromium_accepts_every_zone_the_server_accepts(browser):  # noqa: F811
    page = browser.new_page()
    refused = page.evaluate(
        """zones => zones.filter(zone => {
             try { new Intl.DateTimeFormat(undefined, {timeZone: zone}); return false; } catch (error) { return true; }
           })""",
        sorted(browser_time_zones()),
    )
    page.close()
    assert refused == []

"""The login stops guessing: after repeated failures for one name from one address, even the right password waits."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


def log_in(client, username, password, **headers):
    return client.post("/accounts/login/", {"username": username, "password": password}, **headers)


def test_repeated_failures_lock_that_name_from_that_address(client):
    get_user_model().objects.create_user("oncall", password="the right one")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "oncall", "a guess").status_code == 200  # the form again, with its error
    assert log_in(client, "oncall", "a guess").status_code == 429
    locked = log_in(client, "oncall", "the right one")
    assert locked.status_code == 429 and "too many" in locked.content.decode().lower()
    assert "_auth_user_id" not in client.session
    other_address = log_in(client, "oncall", "the right one", REMOTE_ADDR="10.0.0.9")
    assert other_address.status_code == 302, "someone else's guessing does not lock the owner out everywhere"


def test_a_forged_forwarded_for_header_does_not_reset_the_count(client):
    get_user_model().objects.create_user("oncall", password="the right one")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "oncall", "a guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}")
    assert log_in(client, "oncall", "the right one", HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


def test_a_success_clears_earlier_failures(client):
    get_user_model().objects.create_user("oncall", password="the right one")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "oncall", "a guess")
    assert log_in(client, "oncall", "the right one").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "oncall", "a guess")
    assert log_in(client, "oncall", "the right one").status_code == 302


def test_behind_two_proxies_the_address_the_outer_one_saw_is_counted(client, settings):
    """DJANGO_PROXY_COUNT=2 (a load balancer, then nginx): what the client wrote itself is ignored."""
    settings.PROXY_COUNT = 2
    get_user_model().objects.create_user("oncall", password="the right one")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        forged = f"10.0.0.{attempt}, 192.0.2.{attempt}"  # the client's own entries, left of the real ones
        log_in(client, "oncall", "a guess", HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.5, 10.1.1.1")
    assert log_in(client, "oncall", "the right one", HTTP_X_FORWARDED_FOR="203.0.113.5, 10.1.1.1").status_code == 429
    elsewhere = log_in(client, "oncall", "the right one", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.1.1.1")
    assert elsewhere.status_code == 302, "another client behind the same proxies is not locked out"

"""Which screens are live now (live/presence.py), as the admin's screen list reads it."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from dashboard.live import presence, screens
from dashboard.models import Screen, ScreenConnection

pytestmark = pytest.mark.django_db


def test_a_screen_is_live_while_its_sockets_report_and_gone_once_they_stop_or_close():
    screen = screens.screen_named("Office TV")
    now = timezone.now()
    presence.report(
        screen_id=screen.pk, channel_name="a", connected_at=now - timedelta(minutes=5), version="v1", last_push_at=None
    )
    presence.report(screen_id=screen.pk, channel_name="b", connected_at=now, version="v2", last_push_at=now)
    screen = Screen.objects.prefetch_related(presence.fresh_connections(now=timezone.now())).get(pk=screen.pk)
    live = presence.summary(screen.live_connections)
    assert (live.sockets, live.since, live.versions, live.last_push_at) == (2, now - timedelta(minutes=5), ["v1", "v2"], now)
    presence.gone(channel_name="b")
    ScreenConnection.objects.filter(channel_name="a").update(seen_at=now - presence.LIVE_WINDOW - timedelta(seconds=1))
    screen = Screen.objects.prefetch_related(presence.fresh_connections(now=timezone.now())).get(pk=screen.pk)
    assert presence.summary(screen.live_connections) is None, "a process that died leaves a row nobody renews"
    presence.report(screen_id=screen.pk, channel_name="c", connected_at=now, version="v2", last_push_at=None)
    assert list(ScreenConnection.objects.values_list("channel_name", flat=True)) == ["c"], "the next connect prunes it"


def test_quiet_hours_need_both_ends():
    screen = Screen(name="Half", quiet_from=timezone.now().time())
    with pytest.raises(ValidationError, match="both a start and an end"):
        screen.clean()

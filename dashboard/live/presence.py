"""Which kiosk screens are connected now, for the admin's "Live now": each screen socket reports itself.

A socket reports soon after it connects and then with every heartbeat (20 s), and its row goes when it
disconnects. A process that dies leaves rows nobody renews: after LIVE_WINDOW they count as gone, and
the next report prunes them. Only kiosk screens report (a person looking at /wall/ is not a screen).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone

from dashboard.models import ScreenConnection

LIVE_WINDOW = timedelta(seconds=60)  # three heartbeats


@dataclass(frozen=True)
class Presence:
    """What the admin shows for one screen."""

    sockets: int
    since: datetime | None
    versions: list[str]
    last_push_at: datetime | None


def report(*, screen_id: int, channel_name: str, connected_at: datetime, version: str, last_push_at: datetime | None) -> None:
    now = timezone.now()
    _, created = ScreenConnection.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "screen_id": screen_id,
            "connected_at": connected_at,
            "seen_at": now,
            "version": version[:100],
            "last_push_at": last_push_at,
        },
    )
    if created:  # once per connect, not with every heartbeat of every screen
        ScreenConnection.objects.filter(seen_at__lt=now - LIVE_WINDOW).delete()


def gone(*, channel_name: str) -> None:
    ScreenConnection.objects.filter(channel_name=channel_name).delete()


def fresh_connections(*, now: datetime) -> Prefetch:
    """For a list of screens: each one's live sockets as `screen.live_connections`."""
    fresh = ScreenConnection.objects.filter(seen_at__gte=now - LIVE_WINDOW)
    return Prefetch("connections", queryset=fresh, to_attr="live_connections")


def summary(connections: list[ScreenConnection]) -> Presence | None:
    """One screen's live sockets, summed up; None when it has none."""
    if not connections:
        return None
    return Presence(
        sockets=len(connections),
        since=min(row.connected_at for row in connections),
        versions=sorted({row.version for row in connections if row.version}),
        last_push_at=max((row.last_push_at for row in connections if row.last_push_at), default=None),
    )

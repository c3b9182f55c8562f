"""Kiosk links for wall displays: one per screen, valid until revoked, never by session timeout."""

from django.db import transaction
from django.utils import timezone
from django.utils.http import urlencode

from dashboard.live import push
from dashboard.models import Screen, ScreenPanel, new_screen_token


def kiosk_url(screen: Screen, *, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/wall/?{urlencode({'key': screen.token})}"


def screen_named(name: str, *, project: str = "", time_zone: str = "UTC") -> Screen:
    """The screen called `name`, made with every panel if new; a revoked one gets a fresh link."""
    with transaction.atomic():
        screen, created = Screen.objects.get_or_create(name=name, defaults={"project": project, "time_zone": time_zone})
        if created:
            ScreenPanel.objects.bulk_create(
                ScreenPanel(screen=screen, panel=panel, position=position)
                for position, panel in enumerate(ScreenPanel.Panel.values)
            )
        elif screen.is_revoked:
            screen.token = new_screen_token()
            screen.revoked_at = None
            screen.save(update_fields=["token", "revoked_at"])
    return screen


def revoke(screen: Screen) -> None:
    """The link stops working at once: open sockets are closed with the "revoked" code."""
    Screen.objects.filter(pk=screen.pk).update(revoked_at=timezone.now())
    transaction.on_commit(lambda: push.tell_screen(screen, "revoke"))


def settings_changed(screen: Screen) -> None:
    """A TV shows new panels, zone or scale without anyone touching it: its page reloads itself."""
    transaction.on_commit(lambda: push.tell_screen(screen, "reload"))

"""Kiosk links for wall displays: one per screen, valid until revoked, never by session timeout.

Only a hash of each key is stored, so a link can be shown once, when its key is issued, and never again.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.http import urlencode

from dashboard.live import push
from dashboard.models import Screen, ScreenPanel


class LinkExists(Exception):
    """The screen's link is active and cannot be shown again: revoke it, or ask for a new key."""


def kiosk_url(screen: Screen, *, base_url: str) -> str:
    """The link of a key just issued (screen.key); the stored hash cannot give it back."""
    return f"{base_url.rstrip('/')}/wall/?{urlencode({'key': screen.key})}"


def screen_named(name: str, *, project: str = "", time_zone: str = "UTC", new_key: bool = False) -> Screen:
    """The screen called `name` with a freshly issued key in `screen.key`, made with every panel if new.

    A revoked screen gets a new key. An active one keeps its key (its TV keeps working) unless `new_key`,
    which stops the old link and closes its sockets; otherwise LinkExists.
    """
    with transaction.atomic():
        screen = Screen.objects.select_for_update().filter(name=name).first()
        if screen is None:
            screen = Screen(name=name, project=project, time_zone=time_zone)
            screen.issue_key()
            screen.save()
            ScreenPanel.objects.bulk_create(
                ScreenPanel(screen=screen, panel=panel, position=position)
                for position, panel in enumerate(ScreenPanel.Panel.values)
            )
            return screen
        if not (screen.is_revoked or new_key):
            raise LinkExists(f"Screen {name!r} already has a kiosk link, shown only when it was made.")
        if not screen.is_revoked:
            transaction.on_commit(lambda: push.tell_screen(screen, "revoke"))
        screen.issue_key()
        screen.revoked_at = None
        screen.save(update_fields=["key_hash", "revoked_at"])
    return screen


def revoke(screen: Screen) -> None:
    """The link stops working at once: open sockets are closed with the "revoked" code."""
    Screen.objects.filter(pk=screen.pk).update(revoked_at=timezone.now())
    transaction.on_commit(lambda: push.tell_screen(screen, "revoke"))


def forget(screen: Screen) -> None:
    """Call before deleting a screen: once the delete commits, its walls stop as if revoked."""
    gone = Screen(pk=screen.pk)  # the deleted instance loses its pk
    transaction.on_commit(lambda: push.tell_screen(gone, "revoke"))


def tell(screen: Screen, action: str) -> None:
    """The admin's buttons: "reload", "identify" (its name in big type for ten seconds) or "chime" (a test sound)."""
    transaction.on_commit(lambda: push.tell_screen(screen, action))


def settings_changed(screen: Screen) -> None:
    """A TV shows new panels, zone or scale without anyone touching it: its page reloads itself."""
    transaction.on_commit(lambda: push.tell_screen(screen, "reload"))

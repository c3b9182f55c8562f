"""A login that ends ends its sockets too: logout, deactivation, a password change, a deleted user.

A socket decides who may listen once, when it connects; without this it would go on receiving
fragments after its session was gone. Every socket of a signed-in person joins that person's group;
the receivers below tell the group to check again, and a socket whose session no longer gives it the
same active user closes with LOGIN_REQUIRED (the page then reloads onto the login form). The heartbeat
checks as well, for ends no signal announces (clearsessions, a session deleted in the database).
"""

import hashlib
from importlib import import_module
from types import SimpleNamespace

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from dashboard.live import hub


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def session_digest(session_key: str | None) -> str:
    """Names a session on the channel layer without putting the cookie's value there."""
    return hashlib.sha256(session_key.encode()).hexdigest() if session_key else ""


def tell_user(user_id: int, *, ended_session: str = "") -> None:
    """With `ended_session`, only that session's sockets close; without, every socket checks its session."""
    message = {"type": "session.check", "ended_session": ended_session}
    async_to_sync(hub.send)(user_group(user_id), message)


def still_signed_in(scope) -> bool:
    """Runs in a worker thread. Reads the session afresh (the scope's copy is cached) and lets Django
    decide, as on any request: an inactive user, a changed password or a flushed session all fail."""
    user = scope.get("user")
    session_key = scope["session"].session_key if "session" in scope else None
    if not (user and user.is_authenticated and session_key):
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    current = auth.get_user(SimpleNamespace(session=store))
    return current.is_authenticated and current.pk == user.pk


def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        ended = session_digest(request.session.session_key)
        transaction.on_commit(lambda: tell_user(user.pk, ended_session=ended), robust=True)


def _user_changed(sender, instance, created=False, update_fields=None, **kwargs):
    if created or (update_fields and set(update_fields) <= {"last_login"}):
        return  # a new user has no sockets; every login saves last_login, which ends no session
    # robust: a channel layer that is down must not fail the logout or the save (the heartbeat catches up)
    transaction.on_commit(lambda: tell_user(instance.pk), robust=True)


def listen() -> None:
    """Connected once, in the app's ready(): auth and the sockets should not know about each other."""
    user_logged_out.connect(_logged_out, dispatch_uid="pulseboard-sessions-logout")
    post_save.connect(_user_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid="pulseboard-sessions-save")
    post_delete.connect(_user_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid="pulseboard-sessions-delete")

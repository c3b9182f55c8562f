"""Channels' AuthMiddlewareStack, minus a trip through the shared sync thread for sockets with no session.

A wall's kiosk link carries no login, so its socket has no session cookie and its user is anonymous
without asking anyone. Channels asks anyway, through database_sync_to_async's one shared thread:
5,000 walls reconnecting queued 5,000 trips there, behind every other piece of sync work.
"""

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib.auth.models import AnonymousUser


class LoginMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope):
        if scope["session"].session_key is None:
            scope["user"]._wrapped = AnonymousUser()
        else:
            await super().resolve_scope(scope)


def login_stack(inner):
    return CookieMiddleware(SessionMiddleware(LoginMiddleware(inner)))

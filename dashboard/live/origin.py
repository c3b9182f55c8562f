"""The Origin check for sockets, as strict as Django's CSRF check: the same scheme, host and port.

Channels' AllowedHostsOriginValidator compares only the host name with ALLOWED_HOSTS, so a page on any
port or scheme of any allowed name (another app on the same machine, plain HTTP beside HTTPS) could
open a socket with the viewer's session cookie.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def site_origin(scope) -> tuple[str, str, int] | None:
    """This socket's own origin, as a page loaded from the same server would send it; None for a bad Host."""
    headers = dict(scope.get("headers", []))
    host = headers.get(b"host", b"").decode("latin-1")
    if not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode()
        if headers.get(name, b"").decode("latin-1").split(",")[0].strip() == secure_value:
            scheme = "https"
    return _origin(f"{scheme}://{host}")


def is_same_origin(scope) -> bool:
    origin = dict(scope.get("headers", [])).get(b"origin", b"").decode("latin-1")
    if not origin:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    own = site_origin(scope)
    return own is not None and _origin(origin) == own


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or ""), parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:  # a port that is not a number
        return None


class SameOriginValidator:
    """Refuses a socket opened from another origin before anything reads its cookie."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not is_same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

"""The admin in the viewer's own time zone, which their browser names in a cookie (static/dashboard/viewer-zone.js).

Only the admin: the pages render UTC and say so, and their script shows each time in the viewer's zone.
A cookie naming no zone a browser knows is ignored, and the admin stays in UTC (and says "UTC").
"""

import zoneinfo
from urllib.parse import unquote

from django.utils import timezone

from dashboard.models import browser_time_zones

COOKIE = "pulseboard_tz"


def zone_from_cookie(value: str) -> zoneinfo.ZoneInfo | None:
    """The zone a cookie names ("Europe%2FHelsinki", as the script writes it), or None."""
    name = unquote(value)
    return zoneinfo.ZoneInfo(name) if name in browser_time_zones() else None


class ViewerTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_from_cookie(request.COOKIES.get(COOKIE, "")) if request.path.startswith("/admin/") else None
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)

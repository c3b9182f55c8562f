"""Dates as the admin shows them: 24-hour, with the zone named ("3 Dec 2026, 14:05 EET").

The admin renders times in the viewer's own zone (dashboard/web/viewer_zone.py); Django's English default
("Dec. 3, 2026, 2:05 p.m.") says neither the hour plainly nor which zone it is in. Our pages name their
formats explicitly and are not affected.
"""

DATETIME_FORMAT = "j M Y, H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i"
DATE_FORMAT = "j M Y"

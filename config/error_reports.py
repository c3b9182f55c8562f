"""What a DEBUG error page may show: no password, wherever it hides.

Django masks a setting whose *name* looks secret (PASSWORD, SECRET_KEY, …), but a password inside a
URL under an innocent name went out whole: REDIS_URL, the `address` in CHANNEL_LAYERS, a database or
upstream URL with `user:password@`. This filter stars the password of every URL in the settings and
in the traceback's local variables, and leaves the rest of the URL to debug with. Local variables are
judged by their names as settings are, which Django does not do (redis-py's `auth_args`, `password`).
"""

import re
from urllib.parse import ParseResult, SplitResult

from django.views.debug import SafeExceptionReporterFilter

# scheme://[user:]password@ — the password runs to the last "@" before the path, as urllib reads it.
URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s]*:)?[^/?#\s]*@", re.IGNORECASE)


class CredentialsFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        if isinstance(value, SplitResult | ParseResult):  # a URL in parts: its netloc alone has no scheme to find it by
            value = value.geturl()
        cleansed = super().cleanse_setting(key, value)  # calls this method again for each item of a dict, list or tuple
        return self.mask_urls(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        """Each local variable judged as a setting is: hidden whole when its name looks secret (redis-py's
        `auth_args` holds the password as a plain string, no URL around it), inside dicts by key, URLs starred."""
        return [
            (name, self.cleanse_local(name, value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def cleanse_local(self, name, value):
        try:
            return self.cleanse_setting(name, value)
        except RecursionError:  # nested too deep to look inside: not shown rather than shown unchecked
            return self.cleansed_substitute

    def mask_urls(self, value: str) -> str:
        """The string with every URL's password starred."""
        return URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}{match['user'] or ''}{self.cleansed_substitute}@", value)

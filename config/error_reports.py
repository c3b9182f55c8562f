"""What a DEBUG error page may show: no password, wherever it hides.

Django masks a setting whose *name* looks secret (PASSWORD, SECRET_KEY, …), but a password inside a
URL under an innocent name went out whole: REDIS_URL, the `address` in CHANNEL_LAYERS, a database or
upstream URL with `user:password@`. This filter stars the password of every URL in the settings and
in the traceback's local variables, and leaves the rest of the URL to debug with.
"""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://[user:]password@ — the password runs to the last "@" before the path, as urllib reads it.
URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s]*:)?[^/?#\s]*@", re.IGNORECASE)


class CredentialsFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)  # calls this method again for each item of a dict or list
        return self.mask_urls(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.mask_urls(value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]

    def mask_urls(self, value):
        """A string with every URL's password starred; dicts, lists and tuples of them, masked inside."""
        if isinstance(value, str):
            return URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}{match['user'] or ''}{self.cleansed_substitute}@", value)
        if type(value) is dict:
            return {key: self.mask_urls(item) for key, item in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self.mask_urls(item) for item in value)
        return value

"""Test settings: the real settings, with a throwaway secret and a file-backed test database.

The test database is a file (not SQLite's :memory:) so that commands run as subprocesses, like a
killed `sync --once`, see the same rows as the test that started them.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("UPSTREAM_BACKOFF_SECONDS", "0.01")  # for commands the tests run as subprocesses

from config.settings import *  # noqa: E402,F403
from config.settings import DATA_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

# Pages render without a collectstatic manifest; test_deployment checks the real (manifest) storage.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True  # servers started by the tests serve static files without collectstatic

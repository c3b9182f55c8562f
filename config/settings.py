"""Pulseboard settings: every environment variable is read here and nowhere else.

The embedded defaults (SQLite in ./data, the in-memory channel layer) make a fresh checkout work;
DATABASE_URL and REDIS_URL scale it out. Nonsense values fail at start-up, not at 3 a.m.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / "data"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {os.environ[name]!r}")


def env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None
    if seconds <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, not {value!r}")
    return seconds


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, not {value!r}")
    return number


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_api_url(name: str) -> str:
    """An API base up to and including /api; unset means the source is skipped."""
    url = os.environ.get(name, "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name} must be an http(s) URL ending in /api, not {url!r}")
    return url


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off (make demo generates one in data/secret_key)"
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 -- only with DJANGO_DEBUG on

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS") or ["localhost", "127.0.0.1", "[::1]"]

# Behind a proxy we speak plain HTTP; HTTPS redirects are the proxy's business unless asked for.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# A monitor and a scraper ask each node directly, over plain HTTP: redirected, they would knock on HTTPS at
# the node's own port, where nothing speaks TLS. Browsers get their redirect from the proxy (README).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
BEHIND_HTTPS_PROXY = env_bool("DJANGO_BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # Browsers that saw HTTPS once never try plain HTTP again; 0 turns it off.
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Pulseboard usually lives on one host of a domain it does not own: forcing HTTPS on its sibling hosts,
# or asking browsers to preload that, is the domain owner's call (the two variables above), not ours.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # the trigram index behind `?q=` (migration 0006); harmless on SQLite
    "axes",
    "channels",
    "django_htmx",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "dashboard.web.viewer_zone.ViewerTimeZoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

# django-axes counts failed logins (in the database, so every process sees them) and then refuses that
# name from that address, right password or not, until the cool-off passes (`manage.py axes_reset` ends it).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"  # axes' default is a lazy object that the DEBUG page's URL masking cannot read
# The client's address: the one the outermost of our PROXY_COUNT proxies saw (config/client_address.py);
# anything a client writes into X-Forwarded-For itself is ignored, so it can neither pick a fresh address
# nor lock everyone out by counting against the proxy's.
PROXY_COUNT = env_int("DJANGO_PROXY_COUNT", 1 if BEHIND_HTTPS_PROXY else 0)
AXES_CLIENT_IP_CALLABLE = "config.client_address.client_address"

ROOT_URLCONF = "config.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.version.context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        # No persistent connections: under ASGI each request runs in its own context and would leave its
        # connection open (Django's docs say to disable them there); at 50 requests/s PostgreSQL ran out of clients.
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(exist_ok=True)  # a fresh checkout just works
    # The poller writes while daphne reads: WAL and a busy timeout keep them out of each other's way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# A process's hub (dashboard/live/hub.py) hears every group its sockets are in, and sockets' own
# channels hear nothing: room for a sync's burst of fragments, where a socket had the default 100.
CHANNEL_CAPACITY = 2_000
if REDIS_URL:
    # redis-py 8 reads with a 5 s timeout by default, exactly as long as channels_redis blocks waiting
    # for a message, so an idle layer would time out and close sockets with 1011; and its default pool
    # of 100 connections refuses bursts of connecting walls (after a deploy) with HTTP 500.
    # "core" queues each socket's messages in Redis (a group_send writes once per socket); "pubsub"
    # publishes a group once and each process hands it to its own sockets. See README, "Live updates".
    REDIS_CHANNEL_LAYER = os.environ.get("REDIS_CHANNEL_LAYER", "core").strip() or "core"
    REDIS_LAYERS = {"core": "channels_redis.core.RedisChannelLayer", "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer"}
    if REDIS_CHANNEL_LAYER not in REDIS_LAYERS:
        raise ImproperlyConfigured(f"REDIS_CHANNEL_LAYER must be one of {', '.join(REDIS_LAYERS)}, not {REDIS_CHANNEL_LAYER!r}")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": REDIS_LAYERS[REDIS_CHANNEL_LAYER],
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "max_connections": 2000}],
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
else:
    # Per process: pushes reach sockets only when the poller runs inside daphne (see `demo`).
    CHANNEL_LAYERS = {"default": {"BACKEND": "dashboard.live.layers.InMemoryLayer", "CONFIG": {"capacity": CHANNEL_CAPACITY}}}

# Signed Hooks already received (dashboard/upstreams/webhooks.py, `check_not_replayed`): in Redis when
# there is one, so that a replay sent to another node is refused too; else in this process, bounded.
HOOKS_CACHE = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "hooks",
    "OPTIONS": {"MAX_ENTRIES": 10_000},
}
if REDIS_URL:
    HOOKS_CACHE = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "pulseboard"}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "hooks": HOOKS_CACHE}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["config.formats"]  # 24-hour times with the zone named, for the admin

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],  # an injected <form> cannot post anywhere else
}

# Our own messages, and every warning or error from Django (a 500 with its traceback), daphne and
# Channels (an exception inside a socket), whether DEBUG is on or off.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "dashboard": {"handlers": ["console"], "level": "INFO", "propagate": False},
        **{name: {"handlers": ["console"], "level": "WARNING", "propagate": False} for name in ("django", "daphne", "channels")},
    },
}
# DEBUG pages and error reports star passwords inside URLs too (REDIS_URL, CHANNEL_LAYERS, …).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.CredentialsFilter"

# Helix TeamHub: skipped when HTH_API_URL is unset.
HTH_API_URL = env_api_url("HTH_API_URL")
HTH_COMPANY_KEY = os.environ.get("HTH_COMPANY_KEY", "")
HTH_ACCOUNT_KEY = os.environ.get("HTH_ACCOUNT_KEY", "")
HTH_PROJECTS = env_list("HTH_PROJECTS")
# The first sync of an empty mirror stops after this many events; later syncs always catch up fully.
HTH_BACKFILL_EVENTS = env_int("HTH_BACKFILL_EVENTS", 10_000)
# A pass reads down to the previous pass's start minus this much (upstream's clock may be behind ours);
# every HTH_RESCAN_SECONDS it reads the whole backfill window again, to find backdated events.
HTH_CLOCK_SKEW_SECONDS = env_seconds("HTH_CLOCK_SKEW_SECONDS", 300)
HTH_RESCAN_SECONDS = env_seconds("HTH_RESCAN_SECONDS", 3600)
# How many unfinished events the live refresh fetches at once.
HTH_REFRESH_CONCURRENCY = env_int("HTH_REFRESH_CONCURRENCY", 8)

# OneUptime: skipped when ONEUPTIME_API_URL is unset.
ONEUPTIME_API_URL = env_api_url("ONEUPTIME_API_URL")
ONEUPTIME_API_KEY = os.environ.get("ONEUPTIME_API_KEY", "")
ONEUPTIME_PROJECT_ID = os.environ.get("ONEUPTIME_PROJECT_ID", "")
# Every ONEUPTIME_RESCAN_SECONDS a notes pass reads everything again, not only from its watermark: an edit
# stamped while OneUptime's clock ran behind ours lies below the watermark and is found only so.
ONEUPTIME_RESCAN_SECONDS = env_seconds("ONEUPTIME_RESCAN_SECONDS", 3600)
# Use POST …/update-item and …/delete-item from the start, for a proxy known to refuse PUT and DELETE
# (without it the client falls back on its own after a 405 or 501).
ONEUPTIME_USE_POST_ALTERNATIVES = env_bool("ONEUPTIME_USE_POST_ALTERNATIVES", False)

# Webhook receivers (POST /hooks/hth/, POST /hooks/oneuptime/): each is on only when its secret and its
# upstream's URL are set. The secret travels in X-Pulseboard-Secret (older TeamHub Hooks sign with X-Hub-Signature).
HTH_WEBHOOK_SECRET = os.environ.get("HTH_WEBHOOK_SECRET", "")
ONEUPTIME_WEBHOOK_SECRET = os.environ.get("ONEUPTIME_WEBHOOK_SECRET", "")
# How often the poller looks for queued hook deliveries: it may run in another process than the receiver.
HOOK_QUEUE_CHECK_SECONDS = env_seconds("HOOK_QUEUE_CHECK_SECONDS", 0.1)

# Upstream HTTP: seconds to connect and to read, and how many times to retry 429/5xx.
UPSTREAM_TIMEOUT = (env_seconds("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 5), env_seconds("UPSTREAM_READ_TIMEOUT_SECONDS", 30))
UPSTREAM_RETRIES = env_int("UPSTREAM_RETRIES", 5)
UPSTREAM_BACKOFF_FACTOR = env_seconds("UPSTREAM_BACKOFF_SECONDS", 0.5)
# Each wait a Retry-After asks for is cut to this (at most UPSTREAM_RETRIES waits per call); meanwhile only
# that source waits, since every source runs in its own thread.
UPSTREAM_RETRY_AFTER_MAX = env_seconds("UPSTREAM_RETRY_AFTER_MAX_SECONDS", 30)
# The most one upstream answer may hold (counted as it streams in, after decompression): one huge record
# must not take the server's memory. Such an answer is an error for that item, retried every pass.
UPSTREAM_MAX_ANSWER_BYTES = env_int("UPSTREAM_MAX_ANSWER_BYTES", 8 * 1024 * 1024)
# The most one call may take, every retry and wait included: an answer that drips in never ends otherwise.
UPSTREAM_CALL_DEADLINE_SECONDS = env_seconds("UPSTREAM_CALL_DEADLINE_SECONDS", 180)

POLL_INTERVAL_SECONDS = env_seconds("POLL_INTERVAL_SECONDS", 30)
# How often every not-yet-complete event is fetched by id: an updated old event never returns to the top.
LIVE_REFRESH_SECONDS = env_seconds("LIVE_REFRESH_SECONDS", 3)
# Live means progress < 100, a timestamp younger than LIVE_MAX_AGE and a progress increase within LIVE_STALE_AFTER.
LIVE_STALE_AFTER_SECONDS = env_seconds("LIVE_STALE_AFTER_SECONDS", 120)
LIVE_MAX_AGE_SECONDS = env_seconds("LIVE_MAX_AGE_SECONDS", 6 * 3600)
# Events older than this many days are deleted by the poller (0 keeps them all); unfinished builds and
# the latest result of every build are always kept.
EVENTS_KEPT_DAYS = env_int("EVENTS_KEPT_DAYS", 90)
# "What changed just before" an incident looks this many minutes back from its start (at most a day).
CHANGES_WINDOW_MINUTES = env_int("CHANGES_WINDOW_MINUTES", 120)
if not 1 <= CHANGES_WINDOW_MINUTES <= 24 * 60:
    raise ImproperlyConfigured(f"CHANGES_WINDOW_MINUTES must be from 1 to 1440 (a day), not {CHANGES_WINDOW_MINUTES}")
# Sockets one kiosk key, or one person, may hold open at once; more are closed with code 4429 and retried
# a minute later. A TV needs one; a few spare cover a second TV on the same link and reconnect overlaps.
LIVE_MAX_SOCKETS_PER_KEY = env_int("LIVE_MAX_SOCKETS_PER_KEY", 10)
LIVE_MAX_SOCKETS_PER_USER = env_int("LIVE_MAX_SOCKETS_PER_USER", 20)

# The largest request body any page takes (the admin's note form carries a note and the copy it loaded):
# `serve` refuses a larger one with 413 before reading it, by its Content-Length or as it streams, and
# Django's own bound is the same. The webhook receivers take at most 1 MiB. Django spools a body to a temp
# file past FILE_UPLOAD_MAX_MEMORY_SIZE: at the same bound, no body ever reaches the disk.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 2_621_440)  # 2.5 MiB, Django's default bound
DATA_UPLOAD_MAX_MEMORY_SIZE = FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# GET /metrics (Prometheus) answers only a scraper that sends "Authorization: Bearer <METRICS_TOKEN>";
# unset, /metrics is 404. Each process exposes its own counters: scrape every node.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()

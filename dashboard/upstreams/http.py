"""What every upstream client shares: one retrying requests.Session, and one error type.

Retries live in urllib3's Retry so that 429 and 5xx back off (honouring Retry-After) the same way for
every source. Only idempotent methods are retried: a retried create would duplicate what it creates.
Every answer is read within bounds (bounded.py): at most UPSTREAM_MAX_ANSWER_BYTES, and the whole call
within UPSTREAM_CALL_DEADLINE_SECONDS.
"""

import requests
from django.conf import settings

from dashboard import metrics
from dashboard.upstreams import bounded

RETRIED_STATUSES = (429, 500, 502, 503, 504)


class UpstreamError(Exception):
    """A call to an upstream API failed. `permanent` means retrying the same call cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class AnswerUnreadable(UpstreamError):
    """An answer that cannot be read whole, however often it is asked: the caller reads its records one at a
    time instead, so that one such record costs itself and not its page or its source."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class AnswerTooLarge(AnswerUnreadable):
    """An answer longer than UPSTREAM_MAX_ANSWER_BYTES, left unread."""


class NestedTooDeep(AnswerUnreadable):
    """An answer nested deeper than the JSON parser's stack."""


class CredentialsRejected(UpstreamError):
    """The upstream refused our keys: nothing will work until someone fixes the configuration."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


def make_session(
    *, headers: dict[str, str], retried_methods: frozenset[str] = bounded.WatchedRetry.DEFAULT_ALLOWED_METHODS
) -> requests.Session:
    retry = bounded.WatchedRetry(
        total=settings.UPSTREAM_RETRIES,
        backoff_factor=settings.UPSTREAM_BACKOFF_FACTOR,
        backoff_jitter=settings.UPSTREAM_BACKOFF_FACTOR,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=retried_methods,
        respect_retry_after_header=True,
        retry_after_max=int(settings.UPSTREAM_RETRY_AFTER_MAX),
        raise_on_status=False,
    )
    adapter = bounded.WatchedAdapter(max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers)
    session.hooks["response"].append(metrics.count_upstream_answer)
    return session


def send(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """One HTTP call with the configured timeouts and bounds; a network failure becomes a transient UpstreamError.
    Its errors name the URL with any password in it masked: they reach logs and the admin."""
    shown = f"{method} {bounded.masked_url(url)}"
    with bounded.deadline(settings.UPSTREAM_CALL_DEADLINE_SECONDS) as call:
        try:
            response = session.request(method, url, timeout=settings.UPSTREAM_TIMEOUT, stream=True, **kwargs)
            bounded.read_body(response, limit=settings.UPSTREAM_MAX_ANSWER_BYTES)
            if call.expired:  # the watchdog cut it short: what did arrive is not the whole answer
                raise bounded.DeadlinePassed(call.seconds)
            return response
        except bounded.AnswerTooLarge as exc:
            metrics.UPSTREAM_ERRORS.labels("too_large").inc()
            raise AnswerTooLarge(f"{shown} failed: {exc}") from None
        except (bounded.DeadlinePassed, requests.RequestException) as exc:
            metrics.UPSTREAM_ERRORS.labels("network").inc()
            if call.expired:
                raise UpstreamError(f"{shown} failed: {bounded.DeadlinePassed(call.seconds)}") from requests.Timeout()
            raise UpstreamError(f"{shown} failed: {_reason(exc)}") from exc


def short_reason(exc: Exception) -> str:
    """What went wrong in a few fixed words, for /healthz: no host, URL or upstream text ever gets out."""
    if isinstance(exc, CredentialsRejected):
        return "credentials rejected"
    if isinstance(exc, UpstreamError) and exc.status:
        return f"answered HTTP {exc.status}"
    if isinstance(exc, UpstreamError) and isinstance(exc.__cause__, requests.Timeout):
        return "timed out"
    if isinstance(exc, UpstreamError) and isinstance(exc.__cause__, requests.RequestException):
        return "unreachable"
    if isinstance(exc, UpstreamError):
        return "sent an answer we could not read"
    return "failed inside Pulseboard (see the server log)"


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect (or retries were exhausted)"
    return exc.__class__.__name__

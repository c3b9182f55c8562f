import functools
import logging
import re
from datetime import UTC, timedelta
from html import unescape

from django import template
from django.urls import reverse
from django.utils.html import strip_tags

from dashboard import id_tokens
from dashboard.models import Event, Incident, person_name
from dashboard.web.markdown import render_markdown

register = template.Library()
log = logging.getLogger(__name__)

# What people say for the common operation-target pairs; anything else reads as "<operation> <target>".
PHRASES = {
    ("created", "push"): "pushed",
    ("created", "code_review"): "opened a code review",
    ("updated", "code_review_state"): "changed a code review's state",
    ("created", "task"): "created a task",
    ("updated", "task_state"): "changed a task's state",
    ("updated", "task_title"): "renamed a task",
    ("created", "branch"): "created branch",
    ("deleted", "branch"): "deleted branch",
    ("created", "tag"): "tagged",
    ("added", "project_user"): "added a project member",
    ("created", "project"): "created project",
    ("created", "comment_reply"): "replied to a comment",
    ("completed", "build"): "build",
    ("failed", "build"): "build",
}
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")


@register.filter
def markdown(text: str, length: int | None = None):
    """Markdown rendered and sanitized in dashboard/web/markdown.py, the only place that does it; `length`, the
    whole text's, when `text` is only the start of it that a query loaded."""
    return render_markdown(text, length=length)


@register.filter
def describe(event: Event) -> str:
    """Who did what to what, in words: "pushed 3 commits", "build Development"."""
    phrase = PHRASES.get((event.operation, event.target)) or f"{event.operation} {event.target.replace('_', ' ')}"
    if event.target == "push" and event.commit_count is not None:
        phrase += f" {event.commit_count} commit{'s' if event.commit_count != 1 else ''}"
    return phrase


@register.filter
def person(event: Event) -> str:
    return person_name(event)


@register.filter
def web_links(urls) -> list[str]:
    """Only http(s) links from upstream data become hrefs: a javascript: URL must never be clickable."""
    return [url for url in (urls or []) if isinstance(url, str) and url.lower().startswith(("https://", "http://"))]


@register.filter
def commit_ids(commits) -> list[str]:
    ids = [commit.get("id") if isinstance(commit, dict) else commit for commit in (commits or [])]
    return [str(commit)[:10] for commit in ids if commit]


@register.filter
def review_ids(reviews) -> list[str]:
    return [str(review.get("id") if isinstance(review, dict) else review) for review in (reviews or []) if review]


@register.filter
def color(value: str) -> str:
    """Upstream colours reach CSS only as #hex."""
    return value if isinstance(value, str) and HEX_COLOR.match(value) else ""


@register.filter
def id_token(text: str) -> str:
    """Upstream ids become HTML ids only through dashboard/id_tokens.py: plain, or a digest."""
    return id_tokens.id_token(text)


@register.filter
def incident_url(incident: Incident) -> str:
    """The timeline's address, or "" when the id cannot be a URL segment (say it has a "/" in it)."""
    if id_tokens.is_plain(incident.upstream_id):
        return reverse("incident", args=[incident.upstream_id])
    _say_unlinkable(incident.upstream_id)
    return ""


@functools.lru_cache(maxsize=1024)
def _say_unlinkable(upstream_id: str) -> None:
    """Once per process, not on every render of every wall."""
    log.warning("incident %r is shown without a link: its id cannot be part of a URL", upstream_id)


@register.filter
def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()
    return ""


# Our own palette (pulseboard.css, contrast-checked in tests/test_palette.py), chosen by name, never upstream's
# colours, and a symbol beside each so state reads without colour too.
SEVERITY_TONES = {"critical": "bad", "major": "warn", "minor": "caution"}
SEVERITY_MARKS = {"critical": "‼", "major": "!", "minor": "·"}
STATE_TONES = {
    "created": "bad",
    "investigating": "bad",
    "identified": "warn",
    "acknowledged": "warn",
    "monitoring": "info",
    "resolved": "ok",
}
BLOCK_END = re.compile(r"<(?:/p|br|/li|/h\d|/pre|/tr|/td|/th|/blockquote)\b[^>]*>")
BUILD_MARKS = {"failed": "✗", "stalled": "⏸", "running": "▶", "passed": "✓", "superseded": "↷"}


@register.filter
def severity_tone(name: str) -> str:
    return SEVERITY_TONES.get((name or "").strip().lower(), "neutral")


@register.filter
def severity_mark(name: str) -> str:
    return SEVERITY_MARKS.get((name or "").strip().lower(), "")


@register.filter
def state_tone(name: str) -> str:
    return STATE_TONES.get((name or "").strip().lower(), "neutral")


@register.filter
def state_mark(state: str) -> str:
    return BUILD_MARKS.get(state, "")


@register.filter
def plain(text: str) -> str:
    """A note as one line of words: rendered, sanitized, then stripped of tags, so no markdown syntax shows."""
    html = BLOCK_END.sub(" ", render_markdown(text or ""))
    return " ".join(unescape(strip_tags(html)).split())  # plain text: the template escapes it again


@register.filter
def span(duration, rough: str = "") -> str:
    """A duration the way people say it: "42 s", "4 min 12 s", "5 min" (not "5 min 0 s"), "2 h 5 min", "3 d 4 h";
    `span:"rough"` drops the seconds past a minute ("4 min"), as a wall's tile says it from across the room."""
    if duration is None:
        return ""
    seconds = max(0, int(duration.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min" if rough or not seconds else f"{minutes} min {seconds} s"
    return f"{seconds} s"


@register.filter
def utc(moment, layout: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in UTC, as the pages show times, by `strftime`: a page of runs or two years of weeks shows
    hundreds, and `date`'s locale and zone lookups for each took a third of a render. "" for none."""
    return moment.astimezone(UTC).strftime(layout) if moment else ""


@register.filter
def seconds_span(seconds) -> str:
    """`span` for a number of seconds, as the derived pipelines store durations."""
    return span(timedelta(seconds=seconds)) if seconds is not None else ""


@register.filter
def pipeline_url(event: Event) -> str:
    """A build event's pipeline page, or "" when its names cannot make one (an empty project or repository)."""
    name = event.name or event.ref
    if event.target != "build" or not (event.project and event.repository and name):
        return ""
    return reverse("pipeline", args=[event.project, event.repository, name])

"""The one place markdown becomes HTML: markdown-it-py renders, nh3 (ammonia) sanitizes.

Notes come from OneUptime and from our admin; both are untrusted. markdown-it already escapes raw
HTML and refuses javascript: links, and nh3 then keeps only the tags and attributes a status update
needs, so a `<script>`, an `onerror=` or a `javascript:` URL can never reach a page or a push.

Only the first RENDERED_CHARS_MAX characters are rendered, followed by a "truncated" line: rendering
is the slow part (a 10 MB note took minutes, on every push of its incident's timeline), and nobody
reads that much on a wall. The full text is stored, edited in the admin and written back untouched.
"""

import nh3
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}


RENDERED_CHARS_MAX = 20_000  # about eight pages of text; a status update is rarely a tenth of that


def render_markdown(text: str, *, length: int | None = None) -> SafeString:
    """`length` is the whole note's, when `text` is only as much of it as a query loaded to be shown."""
    text = text or ""
    shown = text[:RENDERED_CHARS_MAX]
    length = max(length or 0, len(text))
    html = _renderer.render(shown)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    if len(shown) < length:
        clean += format_html(
            '<p class="truncated">… truncated: this note is {} characters long and only the first {} are shown here. '
            "The whole text is kept, in the admin and in OneUptime.</p>",
            f"{length:,}",
            f"{RENDERED_CHARS_MAX:,}",
        )
    return mark_safe(clean)  # noqa: S308 -- nh3 has just sanitized it, and format_html escaped the rest

"""Markdown from notes is rendered, and anything that could run script is neutralised."""

from html.parser import HTMLParser

import pytest

from dashboard.web.markdown import render_markdown


class DangerFinder(HTMLParser):
    """Collects what a browser would act on: elements, event handlers and URLs."""

    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.urls = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(name)
            if name in ("href", "src", "action", "formaction"):
                self.urls.append((value or "").strip().lower())


def dangers(html: str) -> DangerFinder:
    finder = DangerFinder()
    finder.feed(html)
    return finder


def test_status_update_markdown_renders():
    html = render_markdown("## Update\n\n- **API** is *back*\n- see [status](https://status.example.com)\n\n`code`")
    assert "<h2>Update</h2>" in html and "<strong>API</strong>" in html and "<code>code</code>" in html
    assert '<a href="https://status.example.com" rel="noopener noreferrer nofollow">status</a>' in html


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<svg onload=alert(1)>",
        '<iframe src="https://evil.example"></iframe>',
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    ],
)
def test_script_never_survives(attack):
    found = dangers(render_markdown(attack))
    assert not found.tags & {"script", "iframe", "svg", "object", "embed", "style"}
    assert found.handlers == []
    assert not [url for url in found.urls if not url.startswith(("http:", "https:", "mailto:"))]


def test_sanitizing_also_guards_html_that_markdown_lets_through():
    """Autolinks and reference links pass markdown-it; nh3 is the second wall."""
    found = dangers(render_markdown("<javascript:alert(1)>\n\n[a][r]\n\n[r]: javascript:alert(1)"))
    assert found.handlers == [] and all(url.startswith(("http", "mailto")) for url in found.urls)


def test_a_huge_note_renders_a_bounded_preview_that_says_it_is_truncated():
    from dashboard.web.markdown import RENDERED_CHARS_MAX

    text = "## Log\n\n" + "line of a pasted log, <b>escaped</b>\n\n" * 100_000  # about 4 MB
    html = render_markdown(text)
    assert len(html) < 3 * RENDERED_CHARS_MAX
    assert 'class="truncated"' in html and f"{len(text):,} characters" in html
    assert "<b>" not in html
    assert "truncated" not in render_markdown("a short note")

from django import template

from dashboard.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str):
    """Markdown rendered and sanitized in dashboard/markdown.py, the only place that does it."""
    return render_markdown(text)

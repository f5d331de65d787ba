"""Markdown → HTML, then sanitized: the only HTML the browser inserts."""

import html

import nh3
from markdown_it import MarkdownIt

# Raw HTML in messages is shown as text, never passed through.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "img",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"}, "ol": {"start"}}


def render_markdown(text: str) -> str:
    return nh3.clean(
        _markdown.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def _paragraph(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>\n"


def html_to_store(text: str) -> str:
    """The sanitized HTML of the text, or "" when it is the text as one plain paragraph
    (most chat messages): `message_html` rebuilds that, so the text is not stored twice."""
    rendered = render_markdown(text)
    return "" if rendered == _paragraph(text) else rendered


def message_html(text: str, stored: str) -> str:
    """A message's HTML from its text and what `html_to_store` kept."""
    return stored or (_paragraph(text) if text.strip() else "")

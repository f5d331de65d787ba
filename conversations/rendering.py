"""Markdown → HTML, then sanitized: the only HTML the browser inserts.

Rendering has a budget, so that no message can cost seconds of CPU or megabytes of HTML:

- work: the parser may take RENDER_MAX_STEPS steps: a try of the block rules at a line, of
  the inline rules at a position, a lookahead (a link's label is looked through, and the
  labels nested in it), a token made, a link destination normalized (LINK_STEPS). The
  time markdown-it takes is about linear in them, whatever the Markdown;
- size: the HTML may be at most `html_budget(text)` characters, a small multiple of the text.

A text over either is shown as plain text: escaped, its line breaks kept.
"""

import html
import re
from contextvars import ContextVar

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

# A step costs markdown-it-py one to ten microseconds (bench/rendering.py prints them); a
# long Markdown document, such as this project's README cut at 32,000 characters, takes
# about 4,000 steps, one full of tables about 5,000.
RENDER_MAX_STEPS = 8_000
# A link's destination is normalized (parsed, encoded) at a cost of about ten steps.
LINK_STEPS = 10
# Markdown's HTML is about 1.2 times its text for prose, up to 7 or 8 times for a tiny
# table or a one-letter list; plain text is at most 5 times its text (`&` is `&amp;`).
HTML_MAX_RATIO = 8
HTML_MIN_BUDGET = 2_000

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "img",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"}, "ol": {"start"}}

_LINE_BREAK = re.compile(r"\r\n?|\n")


class _OverBudget(Exception):
    """The text needs more parsing than RENDER_MAX_STEPS."""


class _Steps:
    """The steps one rendering may still take."""

    def __init__(self, limit: int):
        self.left = limit

    def take(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise _OverBudget


# The rendering in progress in this thread (renderings run in several ORM threads at once).
_steps: ContextVar[_Steps] = ContextVar("render_steps")


class _Tokens(list):
    """Tokens of a rendering: each one made is a step (a table's empty cells are made
    without any rule being tried for them, a run of `*` is one token per character)."""

    def append(self, token) -> None:
        _steps.get().take()
        super().append(token)


def _block_step(state, start_line, end_line, silent) -> bool:
    _steps.get().take()
    return False  # counts, and leaves the line to the real rules


def _inline_step(state, silent) -> bool:
    _steps.get().take()
    return False


def _parse_inline(state) -> None:
    """markdown-it's core rule "inline", into token lists that count."""
    for token in state.tokens:
        if token.type == "inline":
            token.children = _Tokens(token.children or ())
            state.md.inline.parse(token.content, state.md, state.env, token.children)


class _CountingMarkdown(MarkdownIt):
    """markdown-it counting its steps: a first rule wherever rules are tried (every block
    start, every line a paragraph, list or quote checks for its end, every inline
    position, lookaheads included), each token made, each link destination normalized."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.block.ruler.before(
            self.block.ruler.get_all_rules()[0], "count_steps", _block_step,
            {"alt": ["paragraph", "reference", "blockquote", "list"]},
        )
        self.inline.ruler.before(self.inline.ruler.get_all_rules()[0], "count_steps", _inline_step)
        self.core.ruler.at("inline", _parse_inline)
        skip_token = self.inline.skipToken

        # Also the lookaheads that try no rule (a position cached, or nested too deep):
        # a run of `[` makes about twenty of them per character.
        def counted_skip_token(state) -> None:
            _steps.get().take()
            skip_token(state)

        self.inline.skipToken = counted_skip_token

    def normalizeLink(self, url: str) -> str:
        _steps.get().take(LINK_STEPS)
        return super().normalizeLink(url)


def markdown_parser(cls: type[MarkdownIt] = MarkdownIt) -> MarkdownIt:
    # Raw HTML in messages is shown as text, never passed through.
    return cls("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])


_markdown = markdown_parser(_CountingMarkdown)


def sanitize(rendered: str) -> str:
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def html_budget(text: str) -> int:
    """The most HTML a text may have, in characters."""
    return max(HTML_MAX_RATIO * len(text), HTML_MIN_BUDGET)


def _parse(text: str, steps: _Steps):
    """The tokens of the text (as MarkdownIt.parse), or _OverBudget once `steps` are taken."""
    state = StateCore(text, _markdown, {})
    state.tokens = _Tokens()
    token = _steps.set(steps)
    try:
        _markdown.core.process(state)
    finally:
        _steps.reset(token)
    return state.tokens


def parsing_steps(text: str, limit: int = RENDER_MAX_STEPS) -> int:
    """The steps parsing the text takes, up to `limit` + 1."""
    steps = _Steps(limit)
    try:
        _parse(text, steps)
    except _OverBudget:
        pass
    return limit - steps.left


def _attribute_chars(tokens) -> int:
    """The characters of the tokens' attributes. The rest of the HTML is the text's own
    characters, each used once; an attribute can repeat: a reference definition's
    destination and title are written again at every use of the reference."""
    return sum(
        len(value)
        for token in tokens
        for child in token.children or ()
        for value in (child.attrs or {}).values()
    )


def render_markdown(text: str) -> str:
    budget = html_budget(text)
    try:
        tokens = _parse(text, _Steps(RENDER_MAX_STEPS))
    except _OverBudget:
        return plain_text_html(text)
    if _attribute_chars(tokens) > budget:  # measured before rendering them
        return plain_text_html(text)
    rendered = sanitize(_markdown.renderer.render(tokens, _markdown.options, {}))
    return rendered if len(rendered) <= budget else plain_text_html(text)


def plain_text_html(text: str) -> str:
    """The text as one paragraph, escaped, each line break a <br>: as Markdown renders
    plain text."""
    lines = html.escape(_LINE_BREAK.sub("\n", text), quote=False)
    return "<p>" + lines.replace("\n", "<br>\n") + "</p>\n"


def html_to_store(text: str) -> str:
    """The sanitized HTML of the text, or "" when it is the text as plain text (most chat
    messages): `message_html` rebuilds that, so the text is not stored twice."""
    rendered = render_markdown(text)
    return "" if rendered == plain_text_html(text) else rendered


def message_html(text: str, stored: str) -> str:
    """A message's HTML from its text and what `html_to_store` kept. Stored HTML over the
    budget (kept before there was one) is shown as plain text."""
    if stored and len(stored) <= html_budget(text):
        return stored
    return plain_text_html(text) if text.strip() else ""

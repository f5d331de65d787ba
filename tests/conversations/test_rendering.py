import gc
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conversations.rendering import (
    LINK_STEPS, RENDER_MAX_STEPS, html_budget, html_to_store, markdown_parser, message_html, parsing_steps, plain_text_html,
    render_markdown, sanitize,
)

ROOT = Path(__file__).resolve().parents[2]
MAX_CHARS = 32_000
# A guard against seconds, not a measurement (that is bench/rendering.py): CPU time of
# this thread, so a busy machine does not fail it.
GUARD_SECONDS = 0.2


def test_markdown_is_rendered_and_hostile_html_is_inert():
    html = render_markdown("**bold** `code` <img src=x onerror=alert(1)> [x](javascript:alert(1))\n\n```py\nprint(1)\n```")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html
    assert '<pre><code class="language-py">print(1)' in html


def test_links_get_safe_rel_and_newlines_are_kept():
    html = render_markdown("see [docs](https://example.com)\nnext line")
    assert 'rel="noopener noreferrer nofollow"' in html and "<br" in html


SAMPLES = [
    "You said: \"hello\" & <b>x</b>",
    "plain text. With 'quotes'",
    "**bold** and `code`",
    "a\nb",
    "a\r\nb\rc",
    " lead space",
    "   ",
    "",
    "<script>alert(1)</script>",
    "x > y < z & w",
    "- a list\n- of two",
    "[" * MAX_CHARS,
]


def test_stored_html_rebuilds_exactly_what_was_rendered():
    for text in SAMPLES:
        assert message_html(text, html_to_store(text)) == render_markdown(text), text


def test_plain_text_is_not_stored_twice():
    assert html_to_store("You said: \"hello\" & <b>x</b>") == ""
    assert html_to_store("two\nlines") == ""
    assert html_to_store("**bold**") == "<p><strong>bold</strong></p>\n"


def test_plain_text_keeps_its_line_breaks_escaped():
    assert plain_text_html("a <b>\r\nc & d\re") == "<p>a &lt;b&gt;<br>\nc &amp; d<br>\ne</p>\n"


# Markdown as people and models write it: rendered exactly as markdown-it and nh3 render
# it without a budget.
NORMAL = {
    "code blocks": "Try this:\n\n```python\ndef f(x):\n    return [i * 2 for i in x if i > 1]\n```\n\n    indented\n    code",
    "lists": "1. first\n2. second\n   - nested *a*\n   - nested **b**\n3. third\n\n- [ ] todo\n- done",
    "links": "See [the docs](https://example.com/a?b=1&c=2 \"Docs\"), <https://example.org> and [ref][r].\n\n"
    "[r]: https://example.net/ref",
    "images and quotes": "> quoted *text*\n> > nested\n\n![alt text](https://example.com/i.png)",
    "headings": "# One\n## Two\n### Three\n\ntext\n\n---\n\nmore `code` and ~~strike~~ &amp; &copy;",
    "table": "| name | value | note |\n| :--- | ---: | :---: |\n"
    + "".join(f"| row {i} | {i * 7} | `x{i}` and **b** |\n" for i in range(60)),
    "wide sane table": "|" + "".join(f" c{i} |" for i in range(12)) + "\n|" + " --- |" * 12 + "\n"
    + ("|" + " v |" * 12 + "\n") * 20,
    "README": (ROOT / "README.md").read_text()[:MAX_CHARS],
    "BENCHMARKS": (ROOT / "BENCHMARKS.md").read_text()[:MAX_CHARS],
}


@pytest.mark.parametrize("text", NORMAL.values(), ids=NORMAL.keys())
def test_normal_markdown_renders_as_without_a_budget(text):
    assert render_markdown(text) == sanitize(markdown_parser().render(text))
    assert render_markdown(text) != plain_text_html(text)


def reference_bomb(uses: int, destination_chars: int) -> str:
    definition = "[a]: http://x/" + "A" * destination_chars + "\n\n"
    return (definition + "[a]" * uses)[:MAX_CHARS]


def wide_table(columns: int, rows: int) -> str:
    """A header of many columns, then rows of none: markdown-it fills in every cell."""
    return "|a" * columns + "|\n" + "|-" * columns + "|\n" + "|\n" * rows


# Each of them took markdown-it and nh3 from a fifth of a second to two seconds, or made
# megabytes of HTML (bench/rendering.py).
ATTACKS = {
    # The finding: defined once, used 10,000 times (19.6 MB stored for it and its echo).
    "reference link bomb": reference_bomb(uses=10_000, destination_chars=1_984),
    # Fewer uses of a longer destination: cheap to parse, megabytes once rendered.
    "reference link, long destination": reference_bomb(uses=1_000, destination_chars=25_000),
    "3 KB wide table": wide_table(columns=500, rows=500),
    "long table": "|a|b|\n|-|-|\n" + "|x|y|\n" * 5_000,
    "blockquotes": ">" * MAX_CHARS,
    "nested quotes and lists": ("> - " * 10 + "a\n\n") * 700,
    "nested lists": "".join(" " * (2 * (i % 30)) + "- x\n" for i in range(900)),
    "list items": "- a\n" * 8_000,
    "emphasis runs": "*a" * 16_000,
    "emphasis and underscores": "*_" * 16_000,
    "strikethrough": "~~a" * 10_000,
    "brackets": "[" * MAX_CHARS,
    "brackets with text": "[a" * 16_000,
    "images": "![" * 16_000,
    "backticks": "`a``" * 8_000,
    "long link destination": "[a](" + "(" * (MAX_CHARS - 4),
    "long angle destination": "[a](<" + "a" * (MAX_CHARS - 5),
    "autolinks": "<http://a>" * 3_200,
    "e-mail autolinks": "<a@b.co>" * 4_000,
    "many links": "[a](http://example.com/path?q=1) " * 960,
    "reference definitions": "[a]: b\n" * 4_500,
    "entities": "&amp;" * 6_400,
    "numeric entities": "&#x1F600;" * 3_500,
    "many headings": "# a\n" * 8_000,
    "rules": "---\n" * 8_000,
    "ampersands": "&" * MAX_CHARS,
    "line breaks": "\n" * MAX_CHARS,
}


# Each kind of work the parser does is counted toward RENDER_MAX_STEPS: each of these
# texts is mostly one kind, and takes at least so many steps.
WORK = {
    "inline positions": ("&" * 1_000, 1_000),
    "inline tokens": ("*a" * 500, 2 * 1_000),  # a position and a token per character
    # Every `[` looks through the ones after it, and those nested in them, 20 deep.
    "lookaheads": ("[" * 1_000, 10 * 1_000),
    "block lines": ("---\n" * 1_000, 2 * 1_000),  # a try of the block rules and a token per line
    "table cells": (wide_table(columns=100, rows=10), 3 * 100 * 11),  # 3 tokens per cell
    "links": ("[a](b) " * 100, LINK_STEPS * 100),
    "reference definitions": ("[a]: b\n" * 100, LINK_STEPS * 100),
}


@pytest.mark.parametrize("text, at_least", WORK.values(), ids=WORK.keys())
def test_each_kind_of_parsing_work_is_counted(text, at_least):
    assert parsing_steps(text, limit=10**9) >= at_least


def test_a_text_over_the_steps_is_plain_text():
    text = "**strong** " + "&" * RENDER_MAX_STEPS
    assert parsing_steps(text) > RENDER_MAX_STEPS
    assert render_markdown(text) == plain_text_html(text)
    assert render_markdown(text[:-100]) != plain_text_html(text[:-100])


def rendered_within_budget(text: str) -> str:
    # Without the collector's pauses: they grow with the test process's objects, not the text.
    gc.disable()
    try:
        started = time.thread_time()
        html = render_markdown(text)
        assert time.thread_time() - started < GUARD_SECONDS
    finally:
        gc.enable()
    assert len(html) <= html_budget(text)
    return html


@pytest.mark.parametrize("text", ATTACKS.values(), ids=ATTACKS.keys())
def test_an_attack_renders_in_milliseconds_within_its_budget(text):
    assert len(text) <= MAX_CHARS
    rendered_within_budget(text)
    assert len(html_to_store(text)) <= html_budget(text)


@pytest.mark.parametrize("name", ["reference link bomb", "reference link, long destination", "3 KB wide table", "autolinks"])
def test_an_attack_over_the_budget_is_shown_as_plain_text(name):
    assert render_markdown(ATTACKS[name]) == plain_text_html(ATTACKS[name])


def test_html_over_its_budget_is_plain_text_even_when_parsing_was_cheap():
    # 60 columns × 31 rows of empty cells: few parsing steps, 20 KB of HTML for 300 characters.
    text = wide_table(columns=60, rows=30)
    assert len(sanitize(markdown_parser().render(text))) > html_budget(text)
    assert render_markdown(text) == plain_text_html(text)


def test_html_stored_before_the_budget_is_shown_as_plain_text():
    text = ATTACKS["reference link bomb"]
    stored = sanitize(markdown_parser().render(text))
    assert len(stored) > 1_000_000
    assert message_html(text, stored) == plain_text_html(text)
    assert message_html("**bold**", "<p><strong>bold</strong></p>\n") == "<p><strong>bold</strong></p>\n"


def test_renderings_in_several_threads_each_have_their_own_budget():
    texts = [ATTACKS["brackets"], NORMAL["README"], ATTACKS["3 KB wide table"], NORMAL["table"]] * 4
    alone = [render_markdown(text) for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(render_markdown, texts)) == alone


# The generated family: a unit of Markdown tricks repeated up to the message limit, after
# an optional reference definition with a long destination.
TRICKS = [
    "[", "]", "(", ")", "![", "[a]", "[a](b)", "](", "<", ">", "> ", "- ", "* ", "1. ", "#", "|", "|-", "|a|",
    "*", "_", "**", "__", "~~", "`", "``", "\\", "&amp;", "&#x1F600;", "&", "<http://a>", "<a@b.co>",
    "```", "---", "\n", "\n\n", "    ", " ", "a", ":", "\"", "'",
]
FAMILY = settings(
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def expansion_tricks(draw) -> str:
    unit = "".join(draw(st.lists(st.sampled_from(TRICKS), min_size=1, max_size=8)))
    nesting = draw(st.sampled_from(["", "> ", "- ", "  - ", "1. ", "[", "*", "`"])) * draw(st.integers(0, 40))
    unit = nesting + unit
    prefix = ""
    if draw(st.booleans()):
        prefix = "[a]: http://x/" + "A" * draw(st.integers(10, 20_000)) + "\n\n"
        unit += draw(st.sampled_from(["[a]", "![a]", "[a][]", "[x][a]"]))
    return (prefix + unit * (MAX_CHARS // len(unit) + 1))[:MAX_CHARS]


@FAMILY
@given(expansion_tricks())
def test_generated_expansion_tricks_render_in_milliseconds_within_their_budget(text):
    rendered_within_budget(text)

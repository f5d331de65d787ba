from conversations.rendering import render_markdown


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
    " lead space",
    "   ",
    "",
    "<script>alert(1)</script>",
    "x > y < z & w",
    "- a list\n- of two",
]


def test_stored_html_rebuilds_exactly_what_was_rendered():
    from conversations.rendering import html_to_store, message_html

    for text in SAMPLES:
        assert message_html(text, html_to_store(text)) == render_markdown(text), text


def test_plain_paragraphs_are_not_stored_twice():
    from conversations.rendering import html_to_store

    assert html_to_store("You said: \"hello\" & <b>x</b>") == ""
    assert html_to_store("**bold**") == "<p><strong>bold</strong></p>\n"

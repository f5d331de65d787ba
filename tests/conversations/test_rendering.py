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

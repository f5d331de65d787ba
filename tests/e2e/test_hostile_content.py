"""Hostile content in Chromium: markup, script and link tricks typed by a user (and echoed
by the model) in messages, tool arguments and results, approval descriptions and
comments, task titles and conversation titles. None of it may run, in the reply being
streamed, after a reload (the snapshot), on the approvals inbox or on the tasks page;
it is shown as text, breaks no layout, and a right-to-left override stays inside its text.

A guard is installed before any page script (`add_init_script`, which the page's
Content-Security-Policy does not apply to):
- every payload calls `pwned(...)` or `alert(...)`: `window.__pwned` and dialogs must stay empty;
- a MutationObserver checks every element and attribute ever inserted, streaming frames
  included: no `on*` attribute, no javascript:/data:/vbscript: URL, no script, iframe, svg,
  style… in the body, and only the sanitizer's tags and attributes where user text is shown;
- `securitypolicyviolation` events and console errors must not happen either: a payload
  that got into the DOM as markup and was only stopped by the policy still fails the test.
"""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, wait_idle

pytestmark = pytest.mark.browser

RLO, PDF = "\u202e", "\u202c"
FSI, PDI = "\u2068", "\u2069"  # how a description or result isolates a value holding RLO

GUARD = r"""
(() => {
  window.__pwned = [];
  window.pwned = (what) => window.__pwned.push(String(what));
  window.__violations = [];
  window.__unsafe = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`.trim());
  }, true);

  const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'srcdoc', 'data', 'poster',
    'background', 'srcset', 'ping', 'codebase', 'cite', 'longdesc', 'manifest', 'lowsrc', 'dynsrc']);
  const BAD_URL = /^(javascript|vbscript|data|livescript|blob|file):/;
  // Never in the page's body: what would run code, load a document or restyle the page.
  const ACTIVE = new Set(['script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'base', 'svg',
    'math', 'style', 'link', 'meta', 'portal', 'template', 'noscript', 'form', 'input', 'textarea', 'select']);
  // Where the page shows text that a user or the model wrote.
  const CONTENT = ['.message-body', '.card-description', '.card-args', '.card-result', '.arg-value',
    '.arg-name', '.approval-decision', '.approval-item-description', '.approval-item-meta',
    '.conversation-title', '.conversation-heading', '.task-title', '.outbox-text', '.notice-text', '.thinking-text'].join(',');
  // The sanitizer's tags (conversations/rendering.py), and the few the page adds around them.
  const CONTENT_TAGS = new Set(['p', 'br', 'hr', 'strong', 'em', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol',
    'li', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'img',
    'div', 'button', 'span', 'time']);
  const CONTENT_ATTRS = new Set(['href', 'title', 'src', 'alt', 'class', 'start', 'rel', 'target', 'type',
    'aria-label', 'datetime', 'tabindex', 'data-copied', 'id', 'hidden']);
  const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

  const flag = (el, why) => window.__unsafe.push(`${why}: ${el.outerHTML.slice(0, 200)}`);

  function check(el) {
    const tag = el.localName;
    const inBody = !!document.body && document.body.contains(el);
    for (const attr of Array.from(el.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on')) flag(el, `event handler attribute ${name}`);
      if (URL_ATTRS.has(name)) {
        const url = attr.value.replace(/[\u0000-\u0020\u007f-\u00a0]+/g, '').toLowerCase();
        if (BAD_URL.test(url)) flag(el, `${name} with a dangerous scheme`);
      }
    }
    if (tag === 'script' && !(el.getAttribute('src') || '').startsWith('/static/')) flag(el, 'script element');
    if (inBody && ACTIVE.has(tag) && !el.closest('.approval-card, .composer, .logout-form, .sidebar, .inbox-tools, .model-choice, .message-editor, .login-form, .clipboard-helper')) {
      flag(el, 'active element in the body');
    }
    const content = el.parentElement && el.parentElement.closest(CONTENT);
    if (content) {
      if (!CONTENT_TAGS.has(tag)) flag(el, `tag <${tag}> inside shown text`);
      for (const attr of Array.from(el.attributes)) {
        if (!CONTENT_ATTRS.has(attr.name.toLowerCase())) flag(el, `attribute ${attr.name} inside shown text`);
      }
      if (tag === 'a' && el.hasAttribute('href') && !SAFE_PROTOCOLS.has(el.protocol)) flag(el, `link to ${el.protocol}`);
      if (tag === 'img' && el.hasAttribute('src') && !SAFE_PROTOCOLS.has(new URL(el.src, location.href).protocol)) {
        flag(el, 'image URL');
      }
    }
  }

  function scan(node) {
    if (node.nodeType !== 1) return;
    check(node);
    for (const el of node.querySelectorAll('*')) check(el);
  }

  new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === 'attributes') check(record.target);
      for (const node of record.addedNodes) scan(node);
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });

  window.__scanAll = () => {
    scan(document.documentElement);
    return window.__unsafe;
  };
})();
"""

# Raw HTML: each line must come back as exactly this text (the renderer escapes raw HTML).
RAW_HTML = [
    "<script>pwned('script')</script>",
    "<img src=x onerror=\"pwned('img')\">",
    "<svg onload=\"pwned('svg')\"><script>pwned('svg-script')</script></svg>",
    "<svg><animate onbegin=\"pwned('animate')\" attributeName=x dur=1s></svg>",
    "<iframe src=\"javascript:pwned('iframe')\"></iframe>",
    "<iframe srcdoc=\"<script>parent.pwned('srcdoc')</script>\"></iframe>",
    "<a href=\"javascript:pwned('raw-a')\">raw link</a>",
    "<a href=\"data:text/html,<script>alert('data-a')</script>\">data link</a>",
    "<details open ontoggle=\"pwned('details')\">",
    "<input autofocus onfocus=\"pwned('input')\">",
    "<body onload=\"pwned('body')\">",
    "<object data=\"javascript:pwned('object')\"></object>",
    "<embed src=\"javascript:pwned('embed')\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"pwned('mxss')\">",
    "<style>body { display: none }</style>",
    "<base href=\"javascript:pwned('base')//\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:pwned('meta')\">",
    "<form action=\"javascript:pwned('form')\"><button>go</button></form>",
    "<b><i>unclosed <div class=\"skip-link\" title=\"x",
    "</div></article></main></body>",
    "<!-- <img src=x onerror=alert('comment')> -->",
]
RAW_MESSAGE = "\n\n".join(["<img src=x onerror=pwned('title')>", *RAW_HTML])

# Markdown link tricks: (what is typed, what must be shown as text instead of a link).
MARKDOWN_TRICKS = [
    ("[md](javascript:pwned('md'))", "[md](javascript:pwned('md'))"),
    ("[mixed](JaVaScRiPt:pwned('mixed'))", "[mixed](JaVaScRiPt:pwned('mixed'))"),
    ("[entity](javascript&#58;pwned('entity'))", "[entity](javascript:pwned('entity'))"),
    ("[hex](&#x6A;avascript:pwned('hex'))", "[hex](javascript:pwned('hex'))"),
    ("[space]( javascript:pwned('space'))", "[space]( javascript:pwned('space'))"),
    ("[vb](vbscript:pwned('vb'))", "[vb](vbscript:pwned('vb'))"),
    (
        "[data](data:text/html;base64,PHNjcmlwdD5wYXJlbnQucHduZWQoJ2RhdGEnKTwvc2NyaXB0Pg==)",
        "[data](data:text/html;base64,",
    ),
    ("![svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9InB3bmVkKCdzdmcnKSI+PC9zdmc+)", "![svg](data:image/svg+xml"),
    ("<a href=\"jav&#x09;ascript&#58;pwned('entity-a')\">a</a>", "<a href=\"jav\tascript:pwned('entity-a')\">a</a>"),
    ("<javascript:pwned('autolink')>", "<javascript:pwned('autolink')>"),
    ("<JAVASCRIPT:pwned('autolink2')>", "<JAVASCRIPT:pwned('autolink2')>"),
    ("[ref][evil]\n\n[evil]: javascript:pwned('ref')", "[evil]: javascript:pwned('ref')"),
    ("[ref2][]\n\n[ref2]: <data:text/html,pwned('ref2')>", "[ref2]: <data:text/html,pwned('ref2')>"),
]
SAFE_LINKS = ["[ok](https://example.com/ok \"x\\\" onmouseover=\\\"pwned('title-attr')\")", "<https://example.com/safe>"]
MARKDOWN_MESSAGE = "\n\n".join(["Markdown tricks", *(typed for typed, _ in MARKDOWN_TRICKS), *SAFE_LINKS])

LONG_WORD = "W" * 3000
LONG_URL = "https://example.com/" + "a" * 1500
LAYOUT_MESSAGE = "\n\n".join([
    f"left {RLO}right-to-left override{PDF} middle {RLO}unterminated override",
    LONG_WORD,
    LONG_URL,
    "`" + "c" * 1500 + "`",
    "```\n" + "x" * 2000 + "\n```",
    "| " + " | ".join("h" * 200 for _ in range(5)) + " |\n|" + "---|" * 5 + "\n| " + " | ".join("d" * 200 for _ in range(5)) + " |",
])


@pytest.fixture(scope="module")
def server_env():
    # Slow enough to see the echo being streamed.
    return {"OFFLINE_MODEL_DELAY_MS": "20"}


class Guard:
    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("console", self._on_console)
        page.add_init_script(GUARD)

    def _on_console(self, message):
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def _on_dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def assert_nothing_ran(self, where: str) -> None:
        found = self.page.evaluate(
            "() => ({pwned: window.__pwned, violations: window.__violations, unsafe: window.__scanAll()})"
        )
        assert found["pwned"] == [], f"{where}: a payload ran: {found['pwned']}"
        assert found["unsafe"] == [], f"{where}: unsafe markup reached the DOM: {found['unsafe']}"
        assert found["violations"] == [], f"{where}: the Content-Security-Policy had to block: {found['violations']}"
        assert self.dialogs == [], f"{where}: a dialog opened: {self.dialogs}"
        assert self.console_errors == [], f"{where}: console errors: {self.console_errors}"


@pytest.fixture
def guard(page):
    return Guard(page)


def assert_no_horizontal_scroll(page, where: str) -> None:
    overflow = page.evaluate(
        """() => {
          const out = [];
          const doc = document.scrollingElement || document.documentElement;
          if (doc.scrollWidth > doc.clientWidth) out.push(`page ${doc.scrollWidth} > ${doc.clientWidth}`);
          for (const sel of ['#message-scroller', '#conversation', '.main', '.page', '.inbox']) {
            for (const el of document.querySelectorAll(sel)) {
              if (el.scrollWidth > el.clientWidth + 1) out.push(`${sel} ${el.scrollWidth} > ${el.clientWidth}`);
            }
          }
          return out;
        }"""
    )
    assert overflow == [], f"{where}: the page scrolls sideways: {overflow}"


def assert_overrides_stay_inside(page, selector: str) -> int:
    """Each element matching `selector` that holds a right-to-left override: the UI text after
    it on the same line is still laid out after it (to its right), not pulled in and reversed."""
    found = page.evaluate(
        """(selector) => {
          const out = [];
          let checked = 0;
          for (const el of document.querySelectorAll(selector)) {
            if (!el.textContent.includes('\\u202e')) continue;
            const box = el.getBoundingClientRect();
            let next = el.nextSibling;
            while (next && !next.textContent.trim()) next = next.nextSibling;
            if (!next) continue;
            const range = document.createRange();
            range.selectNodeContents(next);
            const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
            const sameLine = rects.filter((r) => r.top < box.bottom - 2 && r.bottom > box.top + 2);
            checked += 1;
            for (const r of sameLine) {
              if (r.left < box.right - 1) out.push(`"${next.textContent.trim()}" at ${r.left} is inside ${el.className} (${box.left}-${box.right})`);
            }
          }
          return {out, checked};
        }""",
        selector,
    )
    assert found["out"] == [], f"a right-to-left override reorders the UI around {selector}: {found['out']}"
    return found["checked"]


def body_texts(page, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("(nodes) => nodes.map((n) => n.textContent)")


def test_hostile_messages_stream_and_reload_as_text(server, page, user, guard, screenshot, backend):
    log_in(page, server, user)
    guard.assert_nothing_ran("chat page")

    # Raw HTML, as the first message: it also becomes the conversation's title.
    send(page, RAW_MESSAGE)
    streaming = page.locator('.message.assistant[data-streaming="true"] .message-body')
    expect(streaming).to_contain_text("<img src=x onerror=\"pwned('img')\">", timeout=TIMEOUT)
    # While it streams the reply is text nodes only.
    assert page.evaluate(
        "() => Array.from(document.querySelectorAll('.message[data-streaming=\"true\"] .message-body'))"
        ".reduce((n, body) => n + body.children.length, 0)"
    ) == 0
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("#conversation-title")).to_have_text("<img src=x onerror=pwned('title')>")
    expect(page.locator(".conversation-item .conversation-title")).to_have_text("<img src=x onerror=pwned('title')>")
    guard.assert_nothing_ran("raw HTML, streamed")

    send(page, MARKDOWN_MESSAGE)
    expect(page.locator(".message.assistant")).to_have_count(2, timeout=TIMEOUT)
    wait_idle(page)
    guard.assert_nothing_ran("Markdown tricks")

    layout_before = page.evaluate(
        "() => ['#app-name', '#approvals-link', '#new-chat', '#composer', '#send']"
        ".map((s) => { const r = document.querySelector(s).getBoundingClientRect(); return [s, r.left, r.right]; })"
    )
    send(page, LAYOUT_MESSAGE)
    expect(page.locator(".message.assistant")).to_have_count(3, timeout=TIMEOUT)
    wait_idle(page)
    guard.assert_nothing_ran("long lines and overrides")

    # Rename the conversation in the UI to a hostile title with an override in it.
    hostile_title = f"<img src=x onerror=pwned('rename')> {RLO}eltit"
    page.locator(".conversation-item .rename-conversation").first.click()
    page.fill(".rename-input", hostile_title)
    # The page shows the new title before the server has it: wait for the server's answer,
    # or the reload below could cancel the request and find the old title.
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/api/conversations/" in r.url) as renamed:
        page.keyboard.press("Enter")
    assert renamed.value.ok
    expect(page.locator(".conversation-item .conversation-title")).to_have_text(hostile_title)
    expect(page.locator("#conversation-title")).to_have_text(hostile_title)

    def check_page(where):
        users = body_texts(page, ".message.user .message-body")
        replies = body_texts(page, ".message.assistant .message-body")
        assert len(users) == 3 and len(replies) == 3, (users, replies)
        for text in (users[0], replies[0]):
            for payload in RAW_HTML:
                assert payload in text, f"{where}: {payload!r} is not shown as text"
        for text in (users[1], replies[1]):
            for _, shown in MARKDOWN_TRICKS:
                assert shown in text, f"{where}: {shown!r} is not shown as text"
        # The safe links are links (the checks above do see links), with nothing added to them.
        links = page.locator(".message-body a").evaluate_all(
            "(links) => links.map((a) => [a.href, a.getAttributeNames().sort().join(' ')])"
        )
        assert ["https://example.com/ok", "href rel target title"] in links, links
        assert ["https://example.com/safe", "href rel target"] in links, links
        assert all(href.startswith("https://example.com/") for href, _ in links), links
        # The override is shown as a character of the text, not applied to the page.
        assert RLO in users[2] and RLO in replies[2]
        assert page.evaluate("() => getComputedStyle(document.body).direction") == "ltr"
        layout_after = page.evaluate(
            "() => ['#app-name', '#approvals-link', '#new-chat', '#composer', '#send']"
            ".map((s) => { const r = document.querySelector(s).getBoundingClientRect(); return [s, r.left, r.right]; })"
        )
        assert layout_after == layout_before, f"{where}: the UI moved"
        assert LONG_WORD in users[2]
        assert_no_horizontal_scroll(page, where)
        guard.assert_nothing_ran(where)

    check_page("live")
    screenshot(f"hostile-chat-{backend}")

    # The snapshot path: the same messages from the server after a reload.
    page.reload()
    expect(page.locator(".message.assistant")).to_have_count(3, timeout=TIMEOUT)
    expect(page.locator("#conversation-title")).to_have_text(hostile_title)
    check_page("after reload")


def test_hostile_tool_calls_approvals_inbox_and_tasks(server, page, user, guard, outbox, screenshot, backend):
    log_in(page, server, user)
    subject = f"<svg onload=pwned('subject')> {RLO}tcejbus"
    body = "<script>pwned('body')</script> [x](javascript:pwned('body-link'))"
    send(page, f"email a@example.com {subject}: {body}")
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    expect(card.locator(".card-description")).to_have_text(f"Send an e-mail to a@example.com with the subject “{FSI}{subject}{PDI}”")
    expect(card.locator('.arg[data-arg="subject"] .arg-value')).to_have_text(subject)
    expect(card.locator('.arg[data-arg="body"] .arg-value')).to_have_text(body)
    guard.assert_nothing_ran("approval card")

    # A conversation title (by the API) with markup and an override, for the inbox.
    conversation_id = re.search(r"/c/([0-9a-f-]+)/", page.url)[1]
    title = f"<iframe srcdoc=\"<script>parent.pwned('conv')</script>\"> {RLO}noitasrevnoc"
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.patch(
        f"{server.url}/api/conversations/{conversation_id}/",
        data=json.dumps({"title": title}),
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf},
    )
    assert response.status == 200, response.text()

    # Edit: hostile edited arguments and comment are shown as text too.
    card.locator(".edit-btn").click()
    expect(card.locator('.edit-field[data-arg="subject"] .field-input')).to_have_value(subject)
    expect(card.locator('.edit-field[data-arg="body"] .field-input')).to_have_value(body)
    edited_body = "<iframe srcdoc=\"<script>parent.pwned('edited')</script>\"></iframe>"
    comment = f"<img src=x onerror=pwned('comment')> {RLO}tnemmoc"
    card.locator('.edit-field[data-arg="body"] .field-input').fill(edited_body)
    card.locator(".edit-comment").fill(comment)
    card.locator(".submit-edit-btn").click()
    edited = page.locator('.approval-card[data-status="edited"]')
    expect(edited.locator(".approval-decision")).to_contain_text(comment, timeout=TIMEOUT)
    expect(edited.locator('.approval-edited .arg[data-arg="body"] .arg-value')).to_have_text(edited_body)
    expect(page.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=TIMEOUT)
    wait_idle(page)
    mail = "".join(outbox.sent())
    assert edited_body in mail
    guard.assert_nothing_ran("edited approval")

    # A task with markup, an override and a long word in its title: tool card, tool result, /tasks/.
    task_title = f"<script>pwned('task')</script> {RLO}ksat " + "T" * 150
    send(page, f"task {task_title}")
    expect(page.locator(".message.assistant").last).to_contain_text("The task was created.", timeout=TIMEOUT)
    wait_idle(page)
    tool_card = page.locator('.tool-card[data-status="succeeded"]').last
    expect(tool_card.locator(".card-args")).to_contain_text(task_title)
    expect(tool_card.locator(".card-result")).to_contain_text(f"Task created: {FSI}{task_title}{PDI}")
    expect(page.locator(".message.tool .message-body").last).to_contain_text(f"Task created: {FSI}{task_title}{PDI}")
    guard.assert_nothing_ran("task tool card")

    # An http_post with markup in its URL and JSON: it waits for approval.
    url = "https://hooks.invalid/<svg/onload=pwned('url')>"
    send(page, f'post {url} {{"html": "<script>pwned(\'json\')</script>", "k": "{RLO}nosj"}}')
    post_card = page.locator('.approval-card[data-status="pending"]')
    expect(post_card.locator(".card-description")).to_have_text(f"POST JSON to {url}", timeout=TIMEOUT)
    expect(post_card.locator('.arg[data-arg="json"] .arg-value')).to_contain_text("<script>pwned('json')</script>")
    guard.assert_nothing_ran("post approval card")
    assert_no_horizontal_scroll(page, "chat with tool cards")

    # The snapshot path.
    page.reload()
    expect(page.locator(".approval-card")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator('.approval-card[data-status="edited"] .approval-decision')).to_contain_text(comment)
    expect(page.locator('.approval-card[data-status="pending"] .card-description')).to_have_text(f"POST JSON to {url}")
    expect(page.locator("#conversation-title")).to_have_text(title)
    expect(page.locator(".message.tool .message-body").last).to_contain_text(f"Task created: {FSI}{task_title}{PDI}")
    assert_no_horizontal_scroll(page, "chat after reload")
    guard.assert_nothing_ran("chat after reload")
    screenshot(f"hostile-approvals-chat-{backend}")

    # The approvals inbox: the description and the conversation title are text.
    page.goto(f"{server.url}/approvals/")
    item = page.locator(".approval-item")
    expect(item).to_have_count(1, timeout=TIMEOUT)
    guard.assert_nothing_ran("approvals inbox")
    expect(item.locator(".approval-item-description")).to_have_text(f"POST JSON to {url}")
    expect(item.locator(".approval-item-conversation")).to_have_text(title)
    assert assert_overrides_stay_inside(page, ".approval-item-conversation") == 1
    assert_no_horizontal_scroll(page, "approvals inbox")
    screenshot(f"hostile-inbox-{backend}")

    # Review → the card in its conversation; reject it with a hostile comment.
    item.locator(".approval-link").click()
    post_card = page.locator('.approval-card[data-status="pending"]')
    expect(post_card).to_be_focused(timeout=TIMEOUT)
    reject_comment = f"</textarea><script>pwned('reject')</script> {RLO}tcejer"
    post_card.locator(".reject-btn").click()
    post_card.locator(".reject-comment").fill(reject_comment)
    post_card.locator(".confirm-reject-btn").click()
    rejected = page.locator('.approval-card[data-status="rejected"]')
    expect(rejected.locator(".approval-decision")).to_contain_text(reject_comment, timeout=TIMEOUT)
    expect(page.locator(".message.tool .message-body").last).to_contain_text(reject_comment, timeout=TIMEOUT)
    wait_idle(page)
    guard.assert_nothing_ran("rejected approval")

    page.goto(f"{server.url}/approvals/?status=all")
    expect(page.locator(".approval-item")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator('.approval-item[data-status="rejected"] .approval-comment')).to_have_text(reject_comment)
    expect(page.locator('.approval-item[data-status="edited"] .approval-comment')).to_have_text(comment)
    assert assert_overrides_stay_inside(page, ".approval-item-conversation") == 2
    assert_no_horizontal_scroll(page, "approvals inbox, all")
    guard.assert_nothing_ran("approvals inbox, all")

    # The tasks page: the title as text; the override stays in it; the long word wraps.
    page.goto(f"{server.url}/tasks/")
    guard.assert_nothing_ran("tasks")
    expect(page.locator(".task-title")).to_have_text(task_title)
    assert assert_overrides_stay_inside(page, ".task-title") == 1
    assert_no_horizontal_scroll(page, "tasks")
    screenshot(f"hostile-tasks-{backend}")

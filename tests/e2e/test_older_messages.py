"""In Chromium: a long conversation opens with its latest messages; the earlier ones come
a page at a time when the user scrolls to the top or presses "Load earlier messages",
the view staying where it was; a version switched to on an old message is fetched back."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, wait_idle
from tests.live import Session, add_messages

pytestmark = pytest.mark.browser

ADDED = 240  # after the first turn: 242 messages, the snapshot shows the latest 50


def top_in_view(locator) -> float:
    """Where the element is, in pixels from the top of the scrolling box's view."""
    return locator.evaluate("(e) => e.getBoundingClientRect().top - e.closest('#message-scroller').getBoundingClientRect().top")


def test_earlier_messages_load_on_scroll_and_by_keyboard_and_versions_still_switch(server, database, page, screenshot, backend):
    log_in(page, server)
    send(page, "first")
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    add_messages(database, conversation_id, ADDED)
    # In the order of the line (messages made at one time are ordered by id).
    listed = Session(server, "alice").request("GET", f"/api/conversations/{conversation_id}/messages/").json()
    contents = [m["content"] for m in listed["results"]]
    assert len(contents) == ADDED + 2

    def shown(content: str):
        return page.locator(".message").filter(has=page.get_by_text(content, exact=True))

    page.reload()
    messages = page.locator(".message")
    load_older = page.get_by_role("button", name="Load earlier messages")
    expect(messages.last.locator(".message-body")).to_have_text(contents[-1], timeout=TIMEOUT)
    expect(messages).to_have_count(50)
    expect(load_older).to_be_visible()
    screenshot(f"older-messages-latest-page-{backend}")

    # Scrolled to the top: the page before comes above, and the view stays on what it showed.
    anchor = shown(contents[-50])
    scroller = page.locator("#message-scroller")
    at_top = top_in_view(anchor) + scroller.evaluate("(e) => e.scrollTop")  # where scrolling to the top puts it
    scroller.evaluate("(e) => { e.scrollTop = 0; }")
    expect(messages).to_have_count(100, timeout=TIMEOUT)
    assert abs(top_in_view(anchor) - at_top) < 2
    expect(messages.first.locator(".message-body")).to_have_text(contents[-100])

    # By keyboard: the button, then Enter until the first message of the conversation.
    load_older.focus()
    expect(load_older).to_be_focused()
    for shown in (150, 200, 242):
        page.keyboard.press("Enter")
        expect(messages).to_have_count(shown, timeout=TIMEOUT)
    expect(load_older).to_be_hidden()
    expect(messages.first).to_contain_text("first")
    expect(messages.first).to_be_focused()
    assert [t.strip() for t in page.locator(".message-body").all_inner_texts()] == contents
    screenshot(f"older-messages-all-{backend}")

    # A version of the first message: its line is short, then back to the long one,
    # whose first message is older than the snapshot's page: it is fetched back to.
    first = page.locator(".message.user").first
    first.get_by_role("button", name="Edit message").click()
    first.locator(".edit-input").fill("FIRST")
    first.get_by_role("button", name="Save").click()
    expect(page.locator(".message.user").first.locator(".version-label")).to_have_text("2 / 2", timeout=TIMEOUT)
    wait_idle(page)
    expect(messages).to_have_count(2)
    expect(load_older).to_be_hidden()

    page.locator(".message.user").first.get_by_role("button", name="Previous version").click()
    switched = page.locator(".message.user").first
    expect(switched.locator(".message-body")).to_have_text("first", timeout=TIMEOUT)
    expect(switched.locator(".version-label")).to_have_text("1 / 2")
    expect(switched.get_by_role("button", name="Next version")).to_be_focused()
    expect(switched).to_be_in_viewport()
    expect(messages).to_have_count(242)
    expect(load_older).to_be_hidden()

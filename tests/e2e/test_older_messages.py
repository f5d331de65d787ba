"""In Chromium: a long conversation opens with its latest messages; the earlier ones come
a page at a time when the user scrolls to the top or presses "Load earlier messages",
the view staying where it was, each approval card in its place; a version switched to,
and an approval linked to, on a message older than the snapshot's page are fetched back to."""

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, wait_idle
from tests.live import Session, add_messages

pytestmark = pytest.mark.browser

ADDED = 240  # after two turns (6 messages): the snapshot shows the latest 50 of 246


def top_in_view(locator) -> float:
    """Where the element is, in pixels from the top of the scrolling box's view."""
    return locator.evaluate("(e) => e.getBoundingClientRect().top - e.closest('#message-scroller').getBoundingClientRect().top")


def test_earlier_messages_load_on_scroll_and_by_keyboard_with_approvals_and_versions(server, page, user, database, screenshot, backend):
    log_in(page, server, user)
    send(page, "first")
    expect(page.locator(".message.assistant")).to_contain_text("first", timeout=TIMEOUT)
    wait_idle(page)
    send(page, "email bob@example.com Lunch: see you at noon")
    page.locator('.approval-card[data-status="pending"] .approve-btn').click(timeout=TIMEOUT)
    expect(page.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=TIMEOUT)
    wait_idle(page)
    approval_id = page.locator(".approval-card").get_attribute("data-approval-id")
    conversation_id = page.url.rstrip("/").rsplit("/", 1)[1]
    add_messages(database, conversation_id, ADDED)
    # In the order of the line (messages made at one time are ordered by id).
    listed = Session(server, user).request("GET", f"/api/conversations/{conversation_id}/messages/").json()
    contents = [m["content"] for m in listed["results"]]
    assert len(contents) == ADDED + 6

    page.reload()
    messages = page.locator(".message")
    cards = page.locator(".approval-card")
    load_older = page.get_by_role("button", name="Load earlier messages")
    expect(messages.last.locator(".message-body")).to_have_text(contents[-1], timeout=TIMEOUT)
    expect(messages).to_have_count(50)
    expect(load_older).to_be_visible()
    expect(cards).to_have_count(0)  # decided before the first message shown
    screenshot(f"older-messages-latest-page-{backend}")

    # Scrolled to the top: the page before comes above, and the view stays on what it showed.
    anchor = page.locator(".message").filter(has=page.get_by_text(contents[-50], exact=True))
    scroller = page.locator("#message-scroller")
    at_top = top_in_view(anchor) + scroller.evaluate("(e) => e.scrollTop")  # where scrolling to the top puts it
    scroller.evaluate("(e) => { e.scrollTop = 0; }")
    expect(messages).to_have_count(100, timeout=TIMEOUT)
    assert abs(top_in_view(anchor) - at_top) < 2
    expect(messages.first.locator(".message-body")).to_have_text(contents[-100])

    # By keyboard: the button, then Enter until the first message of the conversation.
    load_older.focus()
    expect(load_older).to_be_focused()
    for shown in (150, 200, len(contents)):
        page.keyboard.press("Enter")
        expect(messages).to_have_count(shown, timeout=TIMEOUT)
    expect(load_older).to_be_hidden()
    expect(messages.first).to_contain_text("first")
    expect(messages.first).to_be_focused()
    assert [t.strip() for t in page.locator(".message-body").all_inner_texts()] == contents
    # The decision came with its page, between the call and the tool's result.
    expect(cards).to_have_count(1)
    assert cards.evaluate("(e) => e.nextElementSibling.classList.contains('tool')")
    screenshot(f"older-messages-all-{backend}")

    # A version of the first message: its line is short...
    first = page.locator(".message.user").first
    first.get_by_role("button", name="Edit message").click()
    first.locator(".edit-input").fill("FIRST")
    first.get_by_role("button", name="Save").click()
    expect(page.locator(".message.user").first.locator(".version-label")).to_have_text("2 / 2", timeout=TIMEOUT)
    wait_idle(page)
    expect(messages).to_have_count(2)
    expect(load_older).to_be_hidden()

    # ...and back to the long one, whose first message is older than the snapshot's page.
    page.locator(".message.user").first.get_by_role("button", name="Previous version").click()
    switched = page.locator(".message.user").first
    expect(switched.locator(".message-body")).to_have_text("first", timeout=TIMEOUT)
    expect(switched.locator(".version-label")).to_have_text("1 / 2")
    expect(switched.get_by_role("button", name="Next version")).to_be_focused()
    expect(switched).to_be_in_viewport()
    expect(messages).to_have_count(len(contents))
    expect(cards).to_have_count(1)
    assert cards.evaluate("(e) => e.nextElementSibling.classList.contains('tool')")

    # A link to the approval (from the inbox) fetches back to its card.
    page.goto(f"{server.url}/c/{conversation_id}/#approval-{approval_id}")
    expect(cards).to_be_focused(timeout=TIMEOUT)
    expect(cards).to_be_in_viewport()
    expect(messages).to_have_count(len(contents))

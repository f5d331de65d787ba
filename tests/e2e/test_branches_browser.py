"""In Chromium: edit a message, switch between its versions, regenerate a reply (time travel)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server_env():
    # Slow enough that a run is seen running, fast enough for a short test.
    return {"OFFLINE_MODEL_DELAY_MS": "30"}


def test_edit_switch_versions_and_regenerate(server, page, user, screenshot, backend):
    log_in(page, server, user)

    users = page.locator(".message.user")
    replies = page.locator(".message.assistant")

    send(page, "first")
    expect(replies).to_have_count(1, timeout=TIMEOUT)
    expect(replies.first.locator(".message-body")).to_contain_text("first", timeout=TIMEOUT)
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    send(page, "second")
    expect(replies).to_have_count(2, timeout=TIMEOUT)
    expect(replies.last.locator(".message-body")).to_contain_text("second", timeout=TIMEOUT)
    wait_idle(page)
    expect(page.locator(".version-switcher")).to_have_count(0)

    # Edit "second": an inline editor; Esc cancels, Save forks.
    second = users.last
    second.get_by_role("button", name="Edit message").click()
    editor = second.locator(".edit-input")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("second")
    page.keyboard.press("Escape")
    expect(second.locator(".edit-input")).to_have_count(0)
    expect(second.get_by_role("button", name="Edit message")).to_be_focused()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")

    second.get_by_role("button", name="Edit message").click()
    editor = users.last.locator(".edit-input")
    editor.fill("SECOND")
    screenshot(f"branches-editing-{backend}")
    users.last.get_by_role("button", name="Save").click()

    expect(users).to_have_count(2, timeout=TIMEOUT)
    expect(users.last.locator(".message-body")).to_have_text("SECOND", timeout=TIMEOUT)
    expect(users.last.locator(".version-label")).to_have_text("2 / 2")
    expect(replies).to_have_count(2, timeout=TIMEOUT)
    expect(replies.last.locator(".message-body")).to_contain_text("SECOND", timeout=TIMEOUT)
    wait_idle(page)
    expect(users.first.locator(".message-body")).to_have_text("first")
    next_btn = users.last.get_by_role("button", name="Next version")
    prev_btn = users.last.get_by_role("button", name="Previous version")
    expect(next_btn).to_be_disabled()
    expect(prev_btn).to_be_enabled()
    screenshot(f"branches-edited-{backend}")

    # ‹ back to the original: "second" and its reply.
    prev_btn.click()
    expect(users.last.locator(".message-body")).to_have_text("second", timeout=TIMEOUT)
    expect(users.last.locator(".version-label")).to_have_text("1 / 2")
    expect(replies).to_have_count(2)
    expect(replies.last.locator(".message-body")).to_contain_text("second")
    expect(replies.last.locator(".message-body")).not_to_contain_text("SECOND")
    expect(users.last.get_by_role("button", name="Previous version")).to_be_disabled()
    # The focus stays on the switcher (the pressed button is disabled now: its neighbour).
    expect(users.last.get_by_role("button", name="Next version")).to_be_focused()

    # › forward again.
    users.last.get_by_role("button", name="Next version").click()
    expect(users.last.locator(".message-body")).to_have_text("SECOND", timeout=TIMEOUT)
    expect(users.last.locator(".version-label")).to_have_text("2 / 2")
    expect(replies.last.locator(".message-body")).to_contain_text("SECOND")

    # Regenerate the last reply: a second version of it.
    old_reply_id = replies.last.get_attribute("data-message-id")
    replies.last.get_by_role("button", name="Regenerate response").click()
    expect(replies.last).not_to_have_attribute("data-message-id", old_reply_id, timeout=TIMEOUT)
    wait_idle(page)
    expect(replies).to_have_count(2)
    expect(replies.last.locator(".message-body")).to_contain_text("SECOND")
    expect(replies.last.locator(".version-label")).to_have_text("2 / 2", timeout=TIMEOUT)
    expect(users.last.locator(".version-label")).to_have_text("2 / 2")
    screenshot(f"branches-regenerated-{backend}")

    # The versions survive a reload (they come with the snapshot).
    page.reload()
    expect(replies.last.locator(".version-label")).to_have_text("2 / 2", timeout=TIMEOUT)
    replies.last.get_by_role("button", name="Previous version").click()
    expect(replies.last).to_have_attribute("data-message-id", old_reply_id, timeout=TIMEOUT)
    expect(replies.last.locator(".version-label")).to_have_text("1 / 2")
    expect(users.last.locator(".message-body")).to_have_text("SECOND")

    # While a run is open the controls are off; they come back when it ends.
    send(page, "slow 40")
    expect(page.locator('.message.assistant[data-streaming="true"]')).to_contain_text("tick2", timeout=TIMEOUT)
    # Edit and Regenerate are disabled and out of sight (so out of the accessibility tree too).
    expect(users.first.locator(".edit-message")).to_be_disabled()
    expect(users.first.locator(".edit-message")).to_be_hidden()
    expect(replies.first.locator(".regenerate-message")).to_be_disabled()
    expect(page.locator(".version-btn:enabled")).to_have_count(0)
    expect(page.locator(".version-label").first).to_be_visible()
    wait_idle(page)
    expect(users.first.get_by_role("button", name="Edit message")).to_be_enabled()
    expect(replies.last).to_contain_text("tick40")


def test_a_refused_regenerate_is_shown_at_the_reply(server, page, user, backend):
    """The server refuses a fork while a run is open (`conflict`): the page says so at the message.

    The page is made to miss that a run started (its `run` and `token` frames are blanked on
    the way in), so that its Regenerate button is still there to press."""
    import json

    def blank_run_frames(ws):
        app_socket = ws.connect_to_server()

        def to_page(message):
            try:
                frame = json.loads(message)
            except (TypeError, ValueError):
                ws.send(message)
                return
            if frame.get("type") in {"run", "token"} and "seq" in frame:
                frame = {"type": "ignored", "seq": frame["seq"]}
            elif frame.get("type") == "message" and frame["message"].get("role") == "assistant":
                frame = {"type": "ignored", "seq": frame["seq"]}
            ws.send(json.dumps(frame))

        app_socket.on_message(to_page)
        ws.on_message(lambda message: app_socket.send(message))

    log_in(page, server, user)
    send(page, "first")
    replies = page.locator(".message.assistant")
    expect(replies.first.locator(".message-body")).to_contain_text("first", timeout=TIMEOUT)
    wait_idle(page)

    page.route_web_socket(re.compile(r"/ws/conversations/"), blank_run_frames)
    page.reload()
    expect(replies).to_have_count(1, timeout=TIMEOUT)
    send(page, "slow 200")
    expect(page.locator(".message.user")).to_have_count(2, timeout=TIMEOUT)
    regenerate = replies.first.get_by_role("button", name="Regenerate response")
    expect(regenerate).to_be_enabled()
    regenerate.click()
    error = replies.first.locator(".message-error")
    expect(error).to_be_visible(timeout=TIMEOUT)
    expect(error).to_contain_text("stop")
    expect(error).to_have_attribute("role", "alert")
    # The controls are back: nothing is pending any more.
    expect(regenerate).to_be_enabled()
    expect(page.locator(".message.user").first.locator(".message-body")).to_have_text("first")

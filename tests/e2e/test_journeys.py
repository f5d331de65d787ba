"""Journeys through the UI in Chromium, beside tests/e2e/test_browser.py (which covers
logging in, streaming, reloading after a reply, approving, and the phone menu):
conversations created, renamed, searched and deleted; a reply stopped, and a page reloaded
while a reply is written; approvals rejected and edited, found from the inbox; the tasks
page; two tabs on one conversation; a phone-width screen. Screenshots go to test-artifacts/.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, fill_login, send, wait_idle

pytestmark = pytest.mark.browser

CONVERSATION_URL = re.compile(r"/c/([0-9a-f-]{36})/$")


@pytest.fixture(scope="module")
def server_env():
    # 30 ms between words: `slow 300` writes for about 9 s, time to see a reply being
    # written, reload it and stop it; the module's other replies are a few words.
    return {"OFFLINE_MODEL_DELAY_MS": "30"}


def conversation_id(page) -> str:
    expect(page).to_have_url(CONVERSATION_URL)
    return CONVERSATION_URL.search(page.url)[1]


def sidebar_titles(page) -> list[str]:
    return page.locator("#conversation-groups .conversation-item .conversation-title").all_inner_texts()


def horizontal_overflow(page) -> int:
    """How far the page scrolls sideways (0: not at all)."""
    return page.evaluate(
        "() => { const d = document.scrollingElement || document.documentElement; return d.scrollWidth - d.clientWidth; }"
    )


def test_log_in_then_create_rename_search_and_delete_conversations(server, page, user, screenshot, backend):
    # A page that needs a login sends you to it, and back once you are in.
    page.goto(f"{server.url}/approvals/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/approvals/$"))
    expect(page.locator("#id_username")).to_be_focused()
    screenshot(f"login-{backend}")
    fill_login(page, user, password="wrong password")
    expect(page.locator("#login-errors")).to_be_visible()
    expect(page.locator("#login-errors")).to_have_attribute("role", "alert")
    expect(page.locator("#id_username")).to_have_value(user)
    fill_login(page, user)
    expect(page).to_have_url(f"{server.url}/approvals/")

    page.click("#app-name")
    expect(page.locator("#empty-state")).to_be_visible()
    send(page, "alpha apples")
    first = conversation_id(page)
    expect(page.locator(".message.assistant .message-body")).to_contain_text("alpha apples", timeout=TIMEOUT)
    wait_idle(page)
    screenshot(f"conversation-with-reply-{backend}")

    page.click("#new-chat")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#composer")).to_be_focused()
    expect(page.locator(".message")).to_have_count(0)
    send(page, "beta bananas")
    second = conversation_id(page)
    assert second != first
    expect(page.locator(".message.assistant .message-body")).to_contain_text("beta bananas", timeout=TIMEOUT)
    wait_idle(page)
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(2)
    assert sidebar_titles(page) == ["beta bananas", "alpha apples"]  # most recent first
    expect(page.locator(f'.conversation-item[data-conversation-id="{second}"]')).to_have_class(re.compile(r"\bactive\b"))

    # Rename: Enter saves (on the server too), Esc cancels.
    item = page.locator(f'.conversation-item[data-conversation-id="{second}"]')
    item.locator(".rename-conversation").click()
    expect(item.locator(".rename-input")).to_be_focused()
    expect(item.locator(".rename-input")).to_have_value("beta bananas")
    item.locator(".rename-input").fill("Fruit basket")
    page.keyboard.press("Enter")
    expect(item.locator(".conversation-title")).to_have_text("Fruit basket")
    expect(page.locator("#conversation-title")).to_have_text("Fruit basket")
    expect(page).to_have_title("Fruit basket · Agent Chat")
    other = page.locator(f'.conversation-item[data-conversation-id="{first}"]')
    other.locator(".rename-conversation").click()
    other.locator(".rename-input").fill("never saved")
    page.keyboard.press("Escape")
    expect(other.locator(".conversation-title")).to_have_text("alpha apples")
    expect(other.locator(".rename-conversation")).to_be_focused()
    page.reload()
    expect(page.locator("#conversation-title")).to_have_text("Fruit basket", timeout=TIMEOUT)
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(2)
    assert sidebar_titles(page) == ["Fruit basket", "alpha apples"]

    # A reply redraws its own conversation's item in the sidebar and leaves the others be
    # (where the keyboard focus or a screen reader may be).
    page.evaluate(
        """first => {
          const item = document.querySelector(`.conversation-item[data-conversation-id="${first}"]`);
          window.untouchedItem = { item, moved: false };
          new MutationObserver((records) => {
            if (records.some((r) => [...r.removedNodes].includes(item))) window.untouchedItem.moved = true;
          }).observe(document.getElementById('conversation-groups'), { childList: true, subtree: true });
        }""",
        first,
    )
    send(page, "cherries")
    expect(page.locator(".message.assistant .message-body").last).to_contain_text("cherries", timeout=TIMEOUT)
    wait_idle(page)
    assert sidebar_titles(page) == ["Fruit basket", "alpha apples"]
    assert page.evaluate("() => window.untouchedItem.item.isConnected && !window.untouchedItem.moved")

    # Search: titles, and the text of messages; Esc clears it.
    search = page.locator("#conversation-search")
    search.fill("apples")
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(1)
    assert sidebar_titles(page) == ["alpha apples"]
    search.fill("bananas")  # only in a message of "Fruit basket"
    expect(page.locator("#conversation-groups .conversation-item .conversation-title")).to_have_text(["Fruit basket"])
    search.fill("no such thing")
    expect(page.locator("#conversation-list-empty")).to_have_text("No conversations match your search.")
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(0)
    search.press("Escape")
    expect(search).to_have_value("")
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(2)

    # Delete asks first; Cancel keeps the conversation.
    answers = []

    def on_dialog(dialog):
        answers.append(dialog.message)
        dialog.accept() if len(answers) > 1 else dialog.dismiss()

    page.on("dialog", on_dialog)
    other = page.locator(f'.conversation-item[data-conversation-id="{first}"]')
    other.locator(".delete-conversation").click()
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(2)
    other.locator(".delete-conversation").click()
    expect(page.locator("#conversation-groups .conversation-item")).to_have_count(1)
    assert answers == ["Delete “alpha apples”? This cannot be undone."] * 2
    assert page.request.get(f"{server.url}/api/conversations/{first}/messages/").status == 404
    expect(page).to_have_url(f"{server.url}/c/{second}/")  # the open conversation stays open

    # Deleting the open conversation leaves an empty chat.
    page.locator(f'.conversation-item[data-conversation-id="{second}"] .delete-conversation').click()
    expect(page).to_have_url(f"{server.url}/")
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#conversation-list-empty")).to_have_text("No conversations yet. Send a message to start one.")
    assert page.goto(f"{server.url}/c/{second}/").status == 404

    page.goto(f"{server.url}/")
    page.click("#logout-button")
    expect(page).to_have_url(re.compile(r"/accounts/(login|logout)/"))
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_reload_during_a_reply_then_stop_it(server, page, user, screenshot, backend):
    page.goto(f"{server.url}/accounts/login/")
    fill_login(page, user)
    send(page, "slow 300")
    streaming = page.locator('.message.assistant[data-streaming="true"] .message-body')
    expect(streaming).to_contain_text("tick3", timeout=TIMEOUT)
    url = page.url

    # Reload mid-reply: the text so far comes back with the snapshot, and the reply goes on.
    page.reload()
    expect(page).to_have_url(url)
    expect(streaming).to_contain_text("tick3", timeout=TIMEOUT)
    before = streaming.inner_text().split()
    expect(streaming).to_contain_text(f"tick{len(before) + 3}", timeout=TIMEOUT)
    words = streaming.inner_text().split()
    assert words == [f"tick{i}" for i in range(1, len(words) + 1)], "a token was lost or repeated"
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator(".message.user")).to_have_count(1)

    # Stop: the reply keeps what was written, marked Stopped, and nothing more arrives.
    page.click("#stop")
    wait_idle(page)
    reply = page.locator(".message.assistant").last
    expect(reply).to_have_attribute("data-stopped", "true", timeout=TIMEOUT)
    expect(reply.locator(".message-note")).to_have_text("Stopped")
    kept = reply.locator(".message-body").inner_text()
    assert "tick3" in kept and "tick300" not in kept
    page.wait_for_timeout(500)
    assert reply.locator(".message-body").inner_text() == kept
    expect(page.locator("#composer")).to_be_enabled()
    screenshot(f"chat-stopped-{backend}")
    page.reload()
    expect(page.locator(".message.assistant").last.locator(".message-note")).to_have_text("Stopped", timeout=TIMEOUT)
    assert page.locator(".message.assistant").last.locator(".message-body").inner_text() == kept

    # Esc stops a reply too.
    send(page, "slow 300")
    expect(streaming).to_contain_text("tick2", timeout=TIMEOUT)
    page.keyboard.press("Escape")
    wait_idle(page)
    expect(page.locator(".message.assistant").last).to_have_attribute("data-stopped", "true", timeout=TIMEOUT)
    expect(page.locator(".message.assistant")).to_have_count(2)


def test_reject_and_edit_approvals_from_the_inbox_and_see_the_task(server, page, user, outbox, screenshot, backend):
    page.goto(f"{server.url}/accounts/login/")
    fill_login(page, user)
    send(page, "email bob@example.com Lunch: see you at noon")
    expect(page.locator('.approval-card[data-status="pending"]')).to_be_visible(timeout=TIMEOUT)
    first = conversation_id(page)

    # The top bar counts it; the inbox lists it and leads back to its card.
    expect(page.locator("#approvals-count")).to_have_text("1")
    page.click("#approvals-link")
    expect(page).to_have_url(f"{server.url}/approvals/")
    item = page.locator(".approval-item")
    expect(item).to_have_count(1, timeout=TIMEOUT)
    expect(item.locator(".approval-item-tool")).to_have_text("send_email")
    expect(item.locator(".approval-item-description")).to_have_text(
        "Send an e-mail to bob@example.com with the subject “Lunch”"
    )
    expect(item.locator(".approval-item-conversation")).to_have_text("email bob@example.com Lunch: see you at noon")
    screenshot(f"approvals-inbox-{backend}")
    item.get_by_role("link", name=re.compile("^Review")).click()
    expect(page).to_have_url(re.compile(rf"/c/{first}/#approval-"))
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_focused(timeout=TIMEOUT)

    # Reject, with a reason.
    card.locator(".reject-btn").click()
    expect(card.locator(".reject-btn")).to_have_attribute("aria-expanded", "true")
    expect(card.locator(".reject-comment")).to_be_focused()
    page.keyboard.type("Not today")
    card.locator(".confirm-reject-btn").click()
    rejected = page.locator('.approval-card[data-status="rejected"]')
    expect(rejected.locator(".approval-decision")).to_contain_text(f"Rejected by {user}", timeout=TIMEOUT)
    expect(rejected.locator(".approval-comment")).to_have_text("Not today")
    expect(page.locator(".message.assistant").last).to_contain_text(
        "The user rejected the send_email call, so I did not do it.", timeout=TIMEOUT
    )
    wait_idle(page)
    expect(page.locator(".approval-card button")).to_have_count(0)
    screenshot(f"approval-rejected-{backend}")
    assert not outbox.sent()

    # Edit the arguments: the e-mail goes out as edited.
    send(page, "email carol@example.com Tea: at four")
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    card.locator(".edit-btn").click()
    expect(card.locator(".edit-btn")).to_have_attribute("aria-expanded", "true")
    expect(card.locator('.edit-field[data-arg="to"] .field-input')).to_be_focused()
    expect(card.locator('.edit-field[data-arg="to"] .field-input')).to_have_value("carol@example.com")
    expect(card.locator('.edit-field[data-arg="subject"] .field-input')).to_have_value("Tea")
    # An empty required field is refused in the form; nothing is sent.
    card.locator('.edit-field[data-arg="subject"] .field-input').fill("")
    card.locator(".submit-edit-btn").click()
    expect(card).to_have_attribute("data-status", "pending")
    assert card.locator('.edit-field[data-arg="subject"] .field-input').evaluate("(input) => !input.validity.valid")
    card.locator('.edit-field[data-arg="subject"] .field-input').fill("Tea")
    card.locator('.edit-field[data-arg="body"] .field-input').fill("at five, not four")
    card.locator(".edit-comment").fill("Later is better")
    card.locator(".submit-edit-btn").click()
    edited = page.locator('.approval-card[data-status="edited"]')
    expect(edited.locator(".approval-decision")).to_contain_text(f"Edited by {user}", timeout=TIMEOUT)
    expect(edited.locator(".approval-comment")).to_have_text("Later is better")
    expect(edited.locator('.approval-edited .arg-changed[data-arg="body"] .arg-value')).to_have_text("at five, not four")
    expect(edited.locator(".approval-edited .arg-changed")).to_have_count(1)
    expect(edited.locator('.approval-original .arg[data-arg="body"] .arg-value')).to_have_text("at four")
    expect(page.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=TIMEOUT)
    wait_idle(page)
    screenshot(f"approval-edited-{backend}")
    mails = outbox.sent()
    assert len(mails) == 1 and "at five, not four" in mails[0] and "carol@example.com" in mails[0]

    # The inbox: nothing waits; the filter shows the decided ones.
    expect(page.locator("#approvals-count")).to_be_hidden()
    page.click("#approvals-link")
    expect(page.locator("#approvals-empty")).to_be_visible(timeout=TIMEOUT)
    page.select_option("#approvals-filter", "all")
    expect(page).to_have_url(f"{server.url}/approvals/?status=all")
    expect(page.locator(".approval-item")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator(".approval-item .card-status")).to_have_text(["Edited", "Rejected"])
    page.select_option("#approvals-filter", "rejected")
    expect(page.locator(".approval-item")).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator(".approval-item .approval-comment")).to_have_text("Not today")
    page.reload()
    expect(page.locator("#approvals-filter")).to_have_value("rejected")
    expect(page.locator(".approval-item")).to_have_count(1, timeout=TIMEOUT)

    # A task the assistant creates is on the tasks page, with a link to its conversation.
    page.goto(f"{server.url}/c/{first}/")
    send(page, "task buy oat milk")
    expect(page.locator(".message.assistant").last).to_contain_text("The task was created.", timeout=TIMEOUT)
    page.goto(f"{server.url}/tasks/")
    task = page.locator(".task-item")
    expect(task).to_have_count(1)
    expect(task.locator(".task-title")).to_have_text("buy oat milk")
    screenshot(f"tasks-{backend}")
    task.get_by_role("link").click()
    expect(page).to_have_url(f"{server.url}/c/{first}/")
    expect(page.locator(".message.user").last).to_contain_text("task buy oat milk", timeout=TIMEOUT)


def test_two_tabs_on_one_conversation(server, page, user, outbox, backend):
    page.goto(f"{server.url}/accounts/login/")
    fill_login(page, user)
    send(page, "hello from the first tab")
    expect(page.locator(".message.assistant .message-body")).to_contain_text("hello from the first tab", timeout=TIMEOUT)
    wait_idle(page)
    url = f"{server.url}/c/{conversation_id(page)}/"

    other = page.context.new_page()  # same session: a second tab
    errors = []
    other.on("pageerror", lambda error: errors.append(str(error)))
    other.goto(url)
    expect(other.locator(".message.user .message-body")).to_have_text(["hello from the first tab"], timeout=TIMEOUT)
    expect(other.locator(".message.assistant")).to_have_count(1)
    expect(other.locator("#connection-status")).to_have_attribute("data-state", "online")

    # What one tab sends, the other sees as it is written.
    send(page, "slow 40")
    other_streaming = other.locator('.message.assistant[data-streaming="true"] .message-body')
    expect(other_streaming).to_contain_text("tick2", timeout=TIMEOUT)
    expect(other.locator("#stop")).to_be_visible()
    expect(other.locator(".message.assistant").last).to_contain_text("tick40", timeout=TIMEOUT)
    wait_idle(other)

    # An approval asked for in the second tab is decided in the first; both see the decision.
    send(other, "email bob@example.com Hi: from the second tab")
    expect(page.locator(".message.user .message-body").last).to_have_text(
        "email bob@example.com Hi: from the second tab", timeout=TIMEOUT
    )
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    expect(other.locator('.approval-card[data-status="pending"]')).to_be_visible(timeout=TIMEOUT)
    card.locator(".approve-btn").click()
    for tab in (page, other):
        expect(tab.locator('.approval-card[data-status="approved"] .approval-decision')).to_contain_text(
            f"Approved by {user}", timeout=TIMEOUT
        )
        expect(tab.locator(".approval-card .approve-btn")).to_have_count(0)
        expect(tab.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=TIMEOUT)
        expect(tab.locator(".message")).to_have_count(page.locator(".message").count())
    assert len(outbox.sent()) == 1  # sent once, whichever tab decided
    other.close()
    assert errors == []


def test_phone_width_chat_approval_inbox_and_tasks(server, page, user, screenshot, backend):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/accounts/login/")
    assert horizontal_overflow(page) == 0
    fill_login(page, user)
    expect(page.locator("#composer")).to_be_in_viewport(ratio=1)
    expect(page.locator("#send")).to_be_in_viewport(ratio=1)
    for control in ("#menu-toggle", "#approvals-link", "#logout-button"):
        expect(page.locator(control)).to_be_in_viewport(ratio=1)
    assert horizontal_overflow(page) == 0

    # Type, tap Send.
    page.locator("#composer").fill("hello from a phone")
    page.locator("#send").click()
    expect(page.locator(".message.assistant .message-body")).to_contain_text("hello from a phone", timeout=TIMEOUT)
    wait_idle(page)
    assert horizontal_overflow(page) == 0
    screenshot(f"phone-chat-{backend}")

    # An approval card fits and its buttons can be reached.
    send(page, "email bob@example.com Lunch: see you at noon with a rather long body that has to wrap on a phone")
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    card.locator(".approve-btn").scroll_into_view_if_needed()
    expect(card.locator(".approve-btn")).to_be_in_viewport(ratio=1)
    expect(card.locator(".reject-btn")).to_be_in_viewport(ratio=1)
    assert horizontal_overflow(page) == 0
    screenshot(f"phone-approval-{backend}")
    card.locator(".approve-btn").click()
    expect(page.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=TIMEOUT)
    wait_idle(page)

    # The sidebar: New chat closes it; a conversation opens from it; Esc closes it.
    first = conversation_id(page)
    page.click("#menu-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    expect(page.locator("#menu-toggle")).to_have_attribute("aria-expanded", "true")
    page.click("#new-chat")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator("#empty-state")).to_be_visible()
    page.click("#menu-toggle")
    page.locator(f'.conversation-item[data-conversation-id="{first}"] .conversation-link').click()
    expect(page).to_have_url(f"{server.url}/c/{first}/")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator(".message.user").first).to_contain_text("hello from a phone", timeout=TIMEOUT)
    page.click("#menu-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator("#menu-toggle")).to_be_focused()
    assert horizontal_overflow(page) == 0

    for path in ("/approvals/?status=all", "/tasks/"):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("load")
        expect(page.locator("h1")).to_be_in_viewport()
        expect(page.locator("#logout-button")).to_be_in_viewport(ratio=1)
        assert horizontal_overflow(page) == 0, path
    expect(page.locator("#tasks-empty")).to_be_visible()
    page.goto(f"{server.url}/approvals/?status=all")
    expect(page.locator(".approval-item")).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator(".approval-link")).to_be_in_viewport(ratio=1)
    screenshot(f"phone-approvals-{backend}")

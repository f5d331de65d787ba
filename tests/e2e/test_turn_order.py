"""In Chromium, with the offline model: a message sent while a turn is still running waits
behind the whole turn, on the page as on the server. It is marked Queued until its reply
starts, and everything the running turn still writes (its reply, its tool's result, its
approval card) stays above it, live and after a reload."""

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, send_from_another_client, shown_items, wait_idle

pytestmark = pytest.mark.browser

TICKS = " ".join(f"tick{i}" for i in range(1, 151))


@pytest.fixture(scope="module")
def server_env():
    # 60 ms between words: `slow 150` writes for about 9 s.
    return {"OFFLINE_MODEL_DELAY_MS": "60"}


def test_a_message_sent_while_a_reply_streams_comes_after_the_whole_reply(server, page, user, backend):
    log_in(page, server, user)
    send(page, "slow 150")
    streaming = page.locator('.message.assistant[data-streaming="true"]')
    expect(streaming).to_contain_text("tick3", timeout=TIMEOUT)

    send_from_another_client(page, "second question")
    queued = page.locator(".message.user").last
    expect(queued).to_contain_text("second question")
    expect(queued.locator(".queued-note")).to_have_text("Queued")

    # Reloaded mid-reply: the snapshot lists the reply being written after the stored
    # messages; it goes back into its turn, above the queued message.
    page.reload()
    expect(streaming).to_contain_text("tick", timeout=TIMEOUT)
    expect(queued.locator(".queued-note")).to_have_text("Queued")
    assert [item[0] for item in shown_items(page)] == ["user", "assistant", "user"]

    expect(page.locator(".message.assistant")).to_have_count(2, timeout=TIMEOUT)
    wait_idle(page)
    expect(queued.locator(".queued-note")).to_have_count(0)
    shown = shown_items(page)
    assert [kind for kind, _ in shown] == ["user", "assistant", "user", "assistant"]
    assert shown[1][1] == TICKS and shown[2][1] == "second question" and "second question" in shown[3][1]

    page.reload()
    expect(page.locator(".message.assistant")).to_have_count(2, timeout=TIMEOUT)
    assert shown_items(page) == shown


def test_a_message_sent_while_an_approval_waits_comes_after_the_approved_call(server, page, user, screenshot, backend):
    log_in(page, server, user)
    send(page, "email bob@example.com Lunch: see you at noon")
    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#waiting-indicator")).to_be_visible(timeout=TIMEOUT)  # the run waits: Enter sends

    send(page, "recall")
    recall = page.locator(".message.user").last
    expect(recall).to_contain_text("recall")
    expect(recall.locator(".queued-note")).to_have_text("Queued")
    expect(page.locator("#waiting-indicator")).to_be_visible()  # the queued run does not replace it
    screenshot(f"chat-queued-{backend}")

    card.locator(".approve-btn").click()
    expect(page.locator(".message.assistant").last).to_contain_text("see you at noon", timeout=TIMEOUT)
    wait_idle(page)
    expect(recall.locator(".queued-note")).to_have_count(0)
    live = shown_items(page)
    assert [kind for kind, _ in live] == [
        "user", "approval-card", "tool-card", "tool", "assistant", "user", "assistant",
    ], live
    assert live[4][1] == "The e-mail was sent." and live[5][1] == "recall"

    page.reload()
    expect(page.locator(".approval-card")).to_have_count(1, timeout=TIMEOUT)
    expect(page.locator(".message.assistant")).to_have_count(3)  # the tool call's own, empty, too
    assert shown_items(page) == [item for item in live if item[0] != "tool-card"]  # tool cards are live only

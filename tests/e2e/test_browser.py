"""In Chromium: log in, send a message, watch tokens stream, and the reply stays after a reload."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import BACKENDS, require_services
from tests.e2e.pages import fill_login, log_in, send

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """The first steps on the zero-setup default (SQLite, `make start`) as on production's."""
    require_services(request.param)
    return request.param


@pytest.fixture(scope="module")
def server_env():
    # 80 ms between words: slow enough to watch the reply being written.
    return {"OFFLINE_MODEL_DELAY_MS": "80"}


def test_login_chat_stream_and_reload(server, page, user, screenshot, backend):
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    fill_login(page, user)
    expect(page.locator("#composer")).to_be_visible()
    expect(page.locator("#offline-model-notice")).to_be_visible()
    screenshot(f"chat-empty-{backend}")

    send(page, "slow 25")

    streaming = page.locator('.message.assistant[data-streaming="true"]')
    expect(streaming).to_contain_text("tick3", timeout=15_000)
    partial = streaming.inner_text()
    assert "tick25" not in partial, "the reply arrived whole instead of streaming"
    expect(page.locator("#stop")).to_be_visible()
    screenshot(f"chat-streaming-{backend}")

    reply = page.locator(".message.assistant").last
    expect(reply).to_contain_text("tick25", timeout=15_000)
    expect(page.locator('.message.assistant[data-streaming="true"]')).to_have_count(0)
    expect(page.locator("#send")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "online")

    page.reload()
    expect(page.locator(".message.user")).to_have_count(1)
    expect(page.locator(".message.user").first).to_contain_text("slow 25")
    expect(page.locator(".message.assistant")).to_have_count(1)
    expect(page.locator(".message.assistant").first).to_contain_text(" ".join(f"tick{i}" for i in range(1, 26)))
    expect(page.locator("#conversation-list .conversation-item")).to_have_count(1)
    screenshot(f"chat-after-reload-{backend}")


def test_phone_width_hides_the_sidebar_behind_a_menu(server, page, user, screenshot, backend):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, server, user)
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    page.click("#menu-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)  # slid in
    expect(page.locator("#new-chat")).to_be_in_viewport(ratio=1)
    screenshot(f"phone-sidebar-{backend}")


def test_approval_card_approve_and_the_decision_after_reload(server, page, user, outbox, screenshot, backend):
    log_in(page, server, user)
    send(page, "email bob@example.com Lunch: see you at noon")

    card = page.locator('.approval-card[data-status="pending"]')
    expect(card).to_be_visible(timeout=15_000)
    expect(card.locator(".card-description")).to_have_text("Send an e-mail to bob@example.com with the subject “Lunch”")
    expect(card.locator('.arg[data-arg="to"]')).to_contain_text("bob@example.com")
    expect(page.locator("#approvals-count")).to_have_text("1")
    screenshot(f"approval-pending-{backend}")

    card.locator(".approve-btn").click()
    decided = page.locator('.approval-card[data-status="approved"]')
    expect(decided.locator(".approval-decision")).to_contain_text(f"Approved by {user}")
    expect(page.locator(".message.assistant").last).to_contain_text("The e-mail was sent.", timeout=15_000)
    assert len(outbox.sent()) == 1

    page.reload()
    expect(page.locator('.approval-card[data-status="approved"] .approval-decision')).to_contain_text(f"Approved by {user}")
    expect(page.locator(".approval-card .approve-btn")).to_have_count(0)
    expect(page.locator("#approvals-count")).to_be_hidden()
    screenshot(f"approval-decided-{backend}")

    page.goto(f"{server.url}/approvals/")
    expect(page.locator("#approvals-empty")).to_be_visible()

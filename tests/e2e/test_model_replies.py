"""In Chromium, against a real model server's protocol (tests/support/openai_server.py):
a reply's thinking in a collapsed section, live and after a reload (a `reasoning` field or
<think> tags); replies cut off at the output limit say so, even with no text; a run's
model and token counts on its last reply; a failed reply says why and Retry answers the
turn again; the model picker changes the model that answers."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import TIMEOUT, log_in, send, wait_idle
from tests.support.openai_server import Call, Drop, Error, OpenAIServer, Text, ToolCalls, last_user

pytestmark = pytest.mark.browser

MODEL = "openai:test-model"
THOUGHT = "Let me think about this, one step at a time."
TAGGED = "Inside the tags, thinking slowly."
USAGE = {"prompt_tokens": 1234, "completion_tokens": 56, "completion_tokens_details": {"reasoning_tokens": 12}}


@pytest.fixture(scope="module")
def module_model_server():
    with OpenAIServer(strict=True) as server:
        yield server


@pytest.fixture
def model_server(module_model_server):
    """The module's model server, with no rules and no requests left from an earlier test."""
    module_model_server.reset()
    return module_model_server


@pytest.fixture(scope="module")
def server_env(module_model_server):
    return {
        "CHAT_MODEL": MODEL, "CHAT_MODELS": f"{MODEL},offline", "OPENAI_BASE_URL": module_model_server.base_url,
        "OPENAI_API_KEY": "sk-test", "CHAT_MAX_RETRIES": "0",
    }


def test_thinking_cut_off_replies_and_usage(server, model_server, page, user, screenshot, backend):
    model_server.on(last_user("think"), Text("Answer.", reasoning=THOUGHT, delay=0.2, usage=USAGE))
    model_server.on(last_user("tags"), Text("Tagged answer.", reasoning=TAGGED, think_tags=True, delay=0.2))
    model_server.on(last_user("long"), Text("This reply goes on and on", finish_reason="length"))
    model_server.on(last_user("task"), ToolCalls([Call("create_task", '{"title": "buy')], finish_reason="length"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, server, user)

    # The thinking streams into a collapsed section, then the answer into the reply.
    send(page, "think")
    reply = page.locator(".message.assistant").last
    summary = reply.locator(".thinking > summary")
    expect(summary).to_have_text("Thinking…", timeout=TIMEOUT)
    expect(reply.locator(".thinking-text")).to_be_hidden()
    expect(reply.locator(".message-body")).to_have_text("Answer.", timeout=TIMEOUT)
    wait_idle(page)
    expect(summary).to_have_text("Thought")
    expect(reply.locator(".thinking")).not_to_have_attribute("open", "")
    summary.focus()
    page.keyboard.press("Enter")
    expect(reply.locator(".thinking-text")).to_have_text(THOUGHT)
    reply.locator(".copy-message").click()
    assert page.evaluate("navigator.clipboard.readText()") == "Answer."
    expect(reply.locator(".reply-usage")).to_have_text(f"{MODEL} · 1,234 input · 56 output · 12 reasoning tokens")

    # <think>…</think> in the content is thinking too. Opened while written, it stays open
    # (with the focus) when the reply is stored.
    send(page, "tags")
    tagged = page.locator(".message.assistant").last
    expect(tagged.locator(".thinking > summary")).to_have_text("Thinking…", timeout=TIMEOUT)
    tagged.locator(".thinking > summary").focus()
    page.keyboard.press("Enter")
    expect(tagged.locator(".thinking-text")).to_be_visible()
    expect(tagged.locator(".message-body")).to_have_text("Tagged answer.", timeout=TIMEOUT)
    wait_idle(page)
    expect(tagged.locator(".thinking > summary")).to_have_text("Thought")
    expect(tagged.locator(".thinking-text")).to_have_text(TAGGED)
    expect(tagged.locator(".thinking > summary")).to_be_focused()

    # Cut off at the output limit: a note under the reply, also under one with no text.
    send(page, "long")
    expect(page.locator(".message.assistant").last.locator(".incomplete-note")).to_have_text(
        "Cut off: the reply reached the output limit.", timeout=TIMEOUT
    )
    wait_idle(page)
    send(page, "task")
    cut_call = page.locator('.message.assistant[data-incomplete="length"]').nth(1)
    expect(cut_call.locator(".incomplete-note")).to_be_visible(timeout=TIMEOUT)
    wait_idle(page)
    page.locator(".message.assistant").first.hover()
    screenshot(f"chat-thinking-{backend}")

    page.reload()
    expect(page.locator(".message.assistant")).to_have_count(4, timeout=TIMEOUT)
    expect(page.locator(".thinking > summary")).to_have_text(["Thought", "Thought"])
    expect(page.locator(".thinking-text")).to_have_text([THOUGHT, TAGGED], use_inner_text=False)
    expect(page.locator(".thinking-text").first).to_be_hidden()
    expect(page.locator(".message-body").nth(1)).to_have_text("Answer.")
    expect(page.locator(".incomplete-note")).to_have_count(2)
    expect(cut_call.locator(".incomplete-note")).to_be_visible()
    expect(page.locator(".message.assistant").first.locator(".reply-usage")).to_have_text(
        f"{MODEL} · 1,234 input · 56 output · 12 reasoning tokens"
    )


def test_a_failed_reply_says_why_and_retry_answers_again(server, model_server, page, user, screenshot, backend):
    model_server.on(last_user("hello"), Error(401), Text("Hello again."))
    model_server.on(last_user("go on"), Drop(Text("Words that will be cut short", chunk_size=3), 3), Text("Whole."))
    log_in(page, server, user)

    send(page, "hello")
    notice = page.locator("#notices .notice[data-run-id]")
    expect(notice).to_contain_text("The reply failed: The model server refused the app's credentials", timeout=TIMEOUT)
    retry = notice.locator(".retry-btn")
    expect(retry).to_be_visible()
    screenshot(f"chat-failed-{backend}")
    page.reload()
    expect(notice).to_contain_text("The reply failed: The model server refused", timeout=TIMEOUT)
    retry.click()
    expect(page.locator(".message.assistant .message-body")).to_have_text(["Hello again."], timeout=TIMEOUT)
    expect(notice).to_have_count(0)
    wait_idle(page)

    # Cut off mid-reply: the part written is kept, marked; Retry makes a new version.
    send(page, "go on")
    expect(notice).to_contain_text("The reply failed: ", timeout=TIMEOUT)
    cut = page.locator(".message.assistant").last
    expect(cut.locator(".incomplete-note")).to_have_text("Incomplete: the model server failed while writing this reply.")
    retry.click()
    expect(page.locator(".message.assistant").last.locator(".message-body")).to_have_text("Whole.", timeout=TIMEOUT)
    expect(page.locator(".message.assistant").last.locator(".version-label")).to_have_text("2 / 2")
    expect(notice).to_have_count(0)
    wait_idle(page)
    page.reload()
    expect(page.locator(".message.assistant .message-body")).to_have_text(["Hello again.", "Whole."], timeout=TIMEOUT)
    expect(notice).to_have_count(0)


def test_the_model_picker_chooses_who_answers(server, model_server, page, user, backend):
    log_in(page, server, user)
    picker = page.locator("#model-picker")
    expect(picker).to_have_value(MODEL)
    expect(page.locator("#offline-model-notice")).to_be_hidden()

    # A new chat asks for the model chosen when it is created.
    picker.select_option("offline")
    expect(page.locator("#offline-model-notice")).to_be_visible()
    send(page, "slow 3")
    expect(page.locator(".message.assistant").last).to_contain_text("tick1 tick2 tick3", timeout=TIMEOUT)
    wait_idle(page)
    expect(page.locator(".message.assistant").last.locator(".reply-usage")).to_contain_text("offline")

    with page.expect_response(re.compile(r"/api/conversations/[0-9a-f-]+/$")) as patched:
        picker.select_option(MODEL)
    assert patched.value.ok
    expect(page.locator("#offline-model-notice")).to_be_hidden()
    send(page, "and now?")
    expect(page.locator(".message.assistant").last).to_have_text(re.compile("Echo: and now?"), timeout=TIMEOUT)
    wait_idle(page)
    expect(page.locator(".message.assistant").last.locator(".reply-usage")).to_contain_text(MODEL)
    assert len(model_server.chat_requests()) == 1

    page.reload()
    expect(picker).to_have_value(MODEL, timeout=TIMEOUT)
    expect(page.locator(".message.assistant")).to_have_count(2)

"""The Content-Security-Policy in Chromium: the app's own pages and the admin run under it
with no violation, and a reply's Markdown cannot load a remote image."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import new_user
from tests.e2e.pages import fill_login, send

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));
"""


def violations(page) -> list[str]:
    return page.evaluate("window.__violations")


def test_pages_run_under_the_policy_and_remote_images_are_blocked(server, database, page, backend):
    root = new_user(database, superuser=True)
    page.add_init_script(RECORD_VIOLATIONS)
    response = page.goto(f"{server.url}/accounts/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    fill_login(page, root)
    expect(page.locator("#composer")).to_be_visible()

    send(page, "look ![pixel](https://example.com/pixel.png)")
    reply = page.locator(".message.assistant").last
    expect(reply).to_contain_text("look", timeout=15_000)
    expect(page.locator(".message img")).not_to_have_count(0)
    for _ in range(100):  # wait_for_function would need eval, which the policy forbids
        if violations(page):
            break
        page.wait_for_timeout(100)
    # Read once: the streamed reply and the stored one may each try the image.
    found = violations(page)
    assert found and set(found) == {"img-src https://example.com/pixel.png"}, found
    conversation_id = re.search(r"/c/([0-9a-f-]+)/", page.url)[1]

    for path in ("/admin/", f"/admin/conversations/conversation/{conversation_id}/change/",
                 f"/admin/conversations/conversation/{conversation_id}/checkpoints/", "/approvals/", "/tasks/"):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("load")
        assert [v for v in violations(page) if "example.com" not in v] == [], path

"""What the browser tests do on the app's pages: log in, send, wait for a reply to end."""

from playwright.sync_api import expect

from tests.live import PASSWORD

TIMEOUT = 15_000


def fill_login(page, username: str = "alice", password: str = PASSWORD) -> None:
    """Submit the login form of the page shown."""
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")


def log_in(page, server, username: str = "alice") -> None:
    page.goto(f"{server.url}/accounts/login/")
    fill_login(page, username)
    expect(page.locator("#composer")).to_be_visible()


def send(page, text: str) -> None:
    """Type and press Enter once the chat's script has set up its handlers."""
    expect(page.locator('body[data-ready="true"]')).to_have_count(1, timeout=TIMEOUT)
    page.fill("#composer", text)
    page.keyboard.press("Enter")


def wait_idle(page) -> None:
    """The run is over: Send is back and no reply is being written."""
    expect(page.locator("#send")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator('.message.assistant[data-streaming="true"]')).to_have_count(0, timeout=TIMEOUT)

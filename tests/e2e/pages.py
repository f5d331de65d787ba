"""What the browser tests do on the app's pages: log in, send, wait for a reply to end."""

from playwright.sync_api import expect

from tests.live import PASSWORD

TIMEOUT = 15_000


def fill_login(page, username: str, password: str = PASSWORD) -> None:
    """Submit the login form of the page shown."""
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")


def log_in(page, server, username: str) -> None:
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


# The page's own composer sends nothing while a reply is written; another client (a
# script, another device) may, and its message is queued behind the running turn.
SEND_ON_ANOTHER_SOCKET = """
async (text) => {
  const id = location.pathname.split('/')[2];
  const ws = new WebSocket(`ws://${location.host}/ws/conversations/${id}/`);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const stored = new Promise((resolve) => {
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'message' && frame.message.role === 'user' && frame.message.content === text) resolve();
    };
  });
  ws.send(JSON.stringify({ type: 'message.send', content: text, client_id: crypto.randomUUID() }));
  await stored;
  ws.close();
}
"""


def send_from_another_client(page, text: str) -> None:
    """Send a message to the page's conversation over a socket of its own; return once stored."""
    page.evaluate(SEND_ON_ANOTHER_SOCKET, text)


# The items of the conversation as shown, in order, without the empty assistant messages
# that only call a tool: a message's role and text, or a card's kind and tool name.
SHOWN_ITEMS = """
(items) => items.filter((item) => item.dataset.empty !== 'true').map((item) => item.classList.contains('message')
  ? [item.classList[1], item.querySelector('.message-body').innerText.trim()]
  : [item.classList[1], item.querySelector('.card-name').textContent])
"""


def shown_items(page) -> list[tuple[str, str]]:
    """(user/assistant/tool, text) of each message and (approval-card/tool-card, tool) of each card."""
    return [tuple(item) for item in page.locator("#messages > *").evaluate_all(SHOWN_ITEMS)]

"""Stop while a tool executes is honest: the tool is let finish (or its outcome is recorded
as unknown), the tool's step shows that outcome, and the next turn gives the model the
matching result. In-process, through the websocket."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message, Run
from tests.live import free_port
from tests.support.in_process import run_ended

pytestmark = pytest.mark.django_db(transaction=True)


class SlowWebhook(BaseHTTPRequestHandler):
    seconds = 1.0
    started = threading.Event()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SlowWebhook.started.set()
        time.sleep(SlowWebhook.seconds)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hooked")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), SlowWebhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.WEBHOOK_ALLOWED_HOSTS = [host]
    settings.TOOLS_REQUIRING_APPROVAL = []
    SlowWebhook.started.clear()
    yield f"http://{host}/hook"
    server.shutdown()


async def stop_while_the_tool_runs(socket, url: str) -> list[dict]:
    await socket.send({"type": "message.send", "content": f'post {url} {{"a": 1}}'})
    frames = await socket.receive_until(lambda f: f["type"] == "tool" and f["status"] == "started")
    await sync_to_async(SlowWebhook.started.wait)(10)
    await socket.send({"type": "run.cancel"})
    return frames + await socket.receive_until(run_ended)


@sync_to_async
def tool_messages(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, role=Message.Role.TOOL))


async def test_a_tool_that_finishes_after_stop_reports_what_it_did(people, webhook, settings):
    settings.TOOL_STOP_GRACE_SECONDS = 10
    SlowWebhook.seconds = 1.0
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    frames = await stop_while_the_tool_runs(socket, webhook)

    assert frames[-1]["run"]["status"] == Run.Status.CANCELLED
    done = [f for f in frames if f["type"] == "tool" and f["status"] != "started"]
    assert [(f["status"], f["result"]) for f in done] == [("succeeded", "HTTP 200: hooked")]
    [stored] = await tool_messages(conversation)
    assert stored.content == "HTTP 200: hooked" and stored.tool_call_id == done[0]["tool_call_id"]

    # The next turn: the model sees the call with its result (the offline model's
    # `recall` lists what it was given of the user's earlier messages).
    after = await socket.chat("recall")
    assert after[-1]["run"]["status"] == Run.Status.SUCCEEDED
    await socket.close()


async def test_a_tool_still_running_after_the_grace_has_an_unknown_outcome(people, webhook, settings):
    settings.TOOL_STOP_GRACE_SECONDS = 0.3
    SlowWebhook.seconds = 3.0
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    frames = await stop_while_the_tool_runs(socket, webhook)

    done = [f for f in frames if f["type"] == "tool" and f["status"] != "started"]
    assert [f["status"] for f in done] == ["unknown"] and "Outcome unknown" in done[0]["result"]
    [stored] = await tool_messages(conversation)
    assert stored.content.startswith("Outcome unknown: the user stopped the run")
    await socket.close()

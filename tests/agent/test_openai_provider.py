"""CHAT_MODEL=openai:<model> streams from any OpenAI-compatible server at OPENAI_BASE_URL.
In-process, through the websocket."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class FakeOpenAI(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        turn = sum(1 for m in body["messages"] if m["role"] == "user")
        for index, word in enumerate(["Reply", " number", f" {turn}"]):
            chunk = {
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": word} if index == 0 else {"content": word},
                             "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_openai(settings):
    FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.CHAT_MODEL = "openai:local-model"
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.OPENAI_API_KEY = "sk-test"
    yield
    server.shutdown()


async def test_openai_compatible_server_streams_and_sees_earlier_turns(people, fake_openai):
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    first = await socket.chat("first question")
    second = await socket.chat("second question")
    await socket.close()
    assert "".join(f["delta"] for f in first if f["type"] == "token") == "Reply number 1"
    assert second[-2]["message"]["content"] == "Reply number 2"

    last = FakeOpenAI.requests[-1]
    assert last["path"] == "/v1/chat/completions" and last["auth"] == "Bearer sk-test"
    assert last["body"]["model"] == "local-model" and last["body"]["stream"] is True
    assert [t["function"]["name"] for t in last["body"]["tools"]] == ["send_email", "create_task", "http_post", "current_time"]
    said = [(m["role"], m["content"]) for m in last["body"]["messages"] if m["role"] != "system"]
    assert said == [("user", "first question"), ("assistant", "Reply number 1"), ("user", "second question")]

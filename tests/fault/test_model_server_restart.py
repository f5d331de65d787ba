"""A server process killed with SIGKILL while a real-protocol model server streams its
reply, and while a tool runs: after a restart the run finishes, and the next turn is one
the strictest model server accepts (no orphan tool call, roles alternating)."""

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.live import Session, free_port, receive, receive_until, run_ended, send
from tests.support.openai_server import OpenAIServer, Text, ToolCalls, Call, after_tool, last_user, roles

# What the model server is sent after a restart does not depend on the database: these
# run on the production path alone (PostgreSQL and Redis); tests/fault/test_restart.py
# and test_approval_restarts.py kill the server on both backends.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


class SlowWebhook(BaseHTTPRequestHandler):
    """Answers after a long while: the server is killed before it does."""

    called = threading.Event()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        SlowWebhook.called.set()
        time.sleep(30)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def model_server():
    with OpenAIServer(strict=True, api_key="sk-test-restart") as server:
        yield server


@pytest.fixture
def webhook():
    SlowWebhook.called.clear()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), SlowWebhook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def app_with(make_server, model_server, **env):
    return make_server(
        CHAT_MODEL="openai:test-model", OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="sk-test-restart",
        RUN_LEASE_SECONDS="60", **env,
    ).start()


def assert_whole(body: dict) -> None:
    """Every tool call of the request is answered (the strict server would refuse it otherwise)."""
    answered = {m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"}
    called = {c["id"] for m in body["messages"] for c in m.get("tool_calls") or []}
    assert called == answered, body["messages"]


async def test_killed_mid_stream_the_reply_is_written_again_and_the_next_turn_is_accepted(make_server, model_server):
    model_server.on(last_user("a long story"), Text("word " * 200, chunk_size=5, delay=0.05), Text("The end."))
    server = app_with(make_server, model_server)
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "a long story"})
        await receive_until(ws, lambda f: f["type"] == "token")
        await asyncio.to_thread(server.kill)
    server.start()

    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        if not (snapshot["run"] is None and snapshot["messages"][-1]["content"] == "The end."):
            await receive_until(ws, run_ended)
        await send(ws, {"type": "message.send", "content": "thanks"})
        frames = await receive_until(ws, run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"
    requests = model_server.chat_requests()
    assert [r.status for r in model_server.requests if r.path.endswith("completions")] == [200] * len(requests)
    assert roles(requests[-1])[1:] == ["user", "assistant", "user"]
    assert requests[-1]["messages"][2]["content"] == "The end."


async def test_killed_while_a_tool_runs_its_outcome_is_unknown_and_the_model_is_told(
    make_server, model_server, webhook
):
    post = Call("http_post", {"url": f"http://{webhook}/hook", "json": {"a": 1}})
    model_server.on(last_user("ping the hook"), ToolCalls([post]))
    model_server.on(after_tool("http_post"), Text("I could not tell whether it went through."))
    server = app_with(make_server, model_server, WEBHOOK_ALLOWED_HOSTS=webhook, TOOLS_REQUIRING_APPROVAL="")
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "ping the hook"})
        await receive_until(ws, lambda f: f["type"] == "tool" and f["status"] == "started")
        assert await asyncio.to_thread(SlowWebhook.called.wait, 30)  # the call is under way
        await asyncio.to_thread(server.kill)
    server.start()

    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        if snapshot["run"] is not None:
            await receive_until(ws, run_ended)
        await send(ws, {"type": "message.send", "content": "and now?"})
        frames = await receive_until(ws, run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"
    last = model_server.chat_requests()[-1]
    assert_whole(last)
    tool = next(m for m in last["messages"] if m["role"] == "tool")
    assert tool["content"].startswith("Outcome unknown: the server stopped while http_post was running")
    assert roles(last)[1:] == ["user", "assistant", "tool", "assistant", "user"]

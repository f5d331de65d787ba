"""The app in the test's own process: the agent runtime on the test's event loop, and
websockets through channels' WebsocketCommunicator against chatproject.asgi.

For tests marked `django_db(transaction=True)`: the runtime's saver and the ORM threads
write to the test database and commit, as the server does.
"""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import AsyncClient, Client

from chatproject.asgi import application
from chatproject.logs import RedactSecrets
from conversations import orm
from conversations.checkpoints import CHECKPOINT_TABLES_POSTGRES, CHECKPOINT_TABLES_SQLITE
from conversations.models import Conversation, Message, Run
from conversations.runs import runtime as runtime_module
from conversations.services.conversations import conversation_create
from tests.support.frames import until_waiting

TIMEOUT = 30


@pytest.fixture
def orm_threads_disconnect_after(settings):
    """On PostgreSQL the ORM calls run on a pool of threads, each with its connection:
    closed after the test, or the test database could not be dropped."""
    yield
    if orm._executor is None:
        return
    every_thread = threading.Barrier(settings.ORM_THREADS)

    def disconnect():
        connections.close_all()
        every_thread.wait(timeout=10)  # holds this thread, so each thread runs one

    for done in [orm._executor.submit(disconnect) for _ in range(settings.ORM_THREADS)]:
        done.result()


@pytest.fixture
async def agent_runtime(orm_threads_disconnect_after, settings):
    """The runtime a server process has (checkpointer, graph, executor), on this test's
    loop: the one its sockets use. Closed after the test."""
    settings.OFFLINE_MODEL_DELAY_MS = 5
    runtime = await runtime_module.get_runtime()
    yield runtime
    await runtime_module.close_runtime()
    # channels' login and session lookups run on asgiref's thread for thread-sensitive calls.
    await sync_to_async(connections.close_all)()


@orm.to_async
def signed_in(username: str) -> tuple[User, str]:
    """A new user, and the session cookie of a login."""
    user = User.objects.create_user(username)
    client = Client()
    client.force_login(user)
    return user, f"sessionid={client.cookies['sessionid'].value}"


@orm.to_async
def new_conversation(user: User):
    return conversation_create(user=user)


async def websocket(cookie: str, conversation_id) -> tuple[WebsocketCommunicator, dict]:
    """A socket open on the conversation, and its snapshot."""
    socket = communicator(cookie, conversation_id)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    return socket, await receive(socket)


async def receive(socket: WebsocketCommunicator) -> dict:
    return json.loads(await socket.receive_from(timeout=TIMEOUT))


async def receive_until(socket: WebsocketCommunicator, predicate) -> list[dict]:
    frames = [await receive(socket)]
    while not predicate(frames[-1]):
        frames.append(await receive(socket))
    return frames


def run_ended(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"succeeded", "failed", "cancelled"}


def run_waiting(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] == "waiting"


class Socket:
    """A websocket to a conversation, as a browser opens it; `snapshot` is its first frame."""

    def __init__(self, communicator: WebsocketCommunicator, snapshot: dict):
        self.communicator = communicator
        self.snapshot = snapshot

    async def send(self, frame: dict) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def receive(self) -> dict:
        return await receive(self.communicator)

    async def receive_until(self, predicate) -> list[dict]:
        return await receive_until(self.communicator, predicate)

    async def chat(self, content: str, **extra) -> list[dict]:
        """Send a message; every frame up to the end of its run."""
        await self.send({"type": "message.send", "content": content, **extra})
        return await self.receive_until(run_ended)

    async def close(self) -> None:
        await self.communicator.disconnect()


class Person:
    """A logged-in user, who makes conversations and opens websockets to them."""

    def __init__(self, user: User, cookie: str):
        self.user = user
        self.cookie = cookie

    async def conversation(self, **fields):
        return await orm.to_async(conversation_create)(user=self.user, **fields)

    async def open(self, conversation_id) -> Socket:
        return Socket(*await websocket(self.cookie, conversation_id))


@pytest.fixture
async def people(agent_runtime):
    """Makes logged-in users (`await people("bob")`), with the runtime on this test's loop."""

    async def make(username: str = "alice") -> Person:
        return Person(*await signed_in(username))

    return make


async def closed_as_deleted(socket: WebsocketCommunicator) -> None:
    """The socket's next frame is `not_found`, and then it is closed with 4404."""
    frame = await receive(socket)
    assert (frame["type"], frame["code"]) == ("error", "not_found"), frame
    assert await socket.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}


def count_checkpoint_rows(thread_id) -> int:
    """The thread's rows in every checkpoint table."""
    tables = CHECKPOINT_TABLES_POSTGRES if connection.vendor == "postgresql" else CHECKPOINT_TABLES_SQLITE
    with connection.cursor() as cursor:
        total = 0
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE thread_id = %s", [str(thread_id)])
            total += cursor.fetchone()[0]
    return total


checkpoint_rows = orm.to_async(count_checkpoint_rows)


@orm.to_async
def clear_checkpoint_tables() -> None:
    """Empty the checkpoint tables: Django's flush after a transactional test leaves them
    (they are not Django's), so threads of earlier tests' conversations stay in them."""
    tables = CHECKPOINT_TABLES_POSTGRES if connection.vendor == "postgresql" else CHECKPOINT_TABLES_SQLITE
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DELETE FROM {table}")


def communicator(cookie: str | None, conversation_id, *, origin: str = "http://localhost") -> WebsocketCommunicator:
    """A socket to the conversation, not connected yet, sent from `origin` with the
    session cookie (none: not logged in)."""
    headers = [(b"host", b"localhost"), (b"origin", origin.encode())]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)


async def close_code(cookie: str | None, conversation_id) -> int:
    """Open a socket the app accepts and then closes at once (a socket it refuses to
    serve); the close code it gives."""
    socket = communicator(cookie, conversation_id)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    closed = await socket.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close", closed
    await socket.disconnect()  # as a server tells the app once the client has gone
    return closed["code"]


@pytest.fixture
def mail_to_files(settings, mail_dir):
    """The app writes its e-mails to files in `mail_dir` (read them with support.mail.mails)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(mail_dir)


@orm.to_async
def table_counts() -> dict[str, int]:
    """Rows of the tables a frame could add to: conversations, messages, runs."""
    return {model._meta.db_table: model.objects.count() for model in (Conversation, Message, Run)}


def json_body(value) -> bytes:
    """A JSON request body; None sends none."""
    return b"" if value is None else json.dumps(value).encode()


class Browser:
    """HTTP to the app as a browser sends it: the session cookie, and on every request the
    CSRF token and the app's own Origin, which Django checks on unsafe methods."""

    ORIGIN = "http://testserver"  # the test client's host

    def __init__(self):
        self.client = AsyncClient(enforce_csrf_checks=True)

    async def request(self, method: str, path: str, *, json=None, params=None, content: bytes | None = None,
                      headers=None, csrf: bool = True):
        """A request; `json` is sent as the body, `content` as raw bytes; without `csrf`,
        no token and no Origin go with it."""
        headers = dict(headers or {})
        if csrf:
            if "csrftoken" in self.client.cookies:
                headers.setdefault("X-CSRFToken", self.client.cookies["csrftoken"].value)
            headers.setdefault("Origin", self.ORIGIN)
        body = content if content is not None else json_body(json)
        return await self.client.generic(
            method, path, body, content_type="application/json", headers=headers, query_params=params
        )

    async def create_conversation(self, title: str = "") -> dict:
        response = await self.request("POST", "/api/conversations/", json={"title": title})
        assert response.status_code == 201, response.content
        return response.json()


async def browser(person: Person | None) -> Browser:
    """A browser logged in as the person (None: not logged in), with the CSRF cookie the
    chat page sets."""
    made = Browser()
    if person is not None:
        await made.client.aforce_login(person.user)
    await made.client.get("/")
    return made


async def ask(socket: Socket, content: str) -> tuple[dict, list[dict]]:
    """Send a message that calls a tool needing approval; the approval and the frames."""
    await socket.send({"type": "message.send", "content": content})
    frames = await socket.receive_until(until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approvals = [f["approval"] for f in frames if f["type"] == "approval"]
    assert len(approvals) == 1
    return approvals[0], frames


async def decide(socket: Socket, approval: dict, decision: str, **fields) -> list[dict]:
    """Decide the approval; every frame up to the end of its run."""
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": decision, **fields})
    return await socket.receive_until(run_ended)


async def fork(socket: Socket, frame: dict) -> tuple[dict, list[dict]]:
    """Send an edit or regenerate; the snapshot of the new branch and the run's frames."""
    await socket.send(frame)
    snapshot = await socket.receive()
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot, await socket.receive_until(run_ended)


async def switch(socket: Socket, **target) -> dict:
    await socket.send({"type": "branch.switch", **target})
    snapshot = await socket.receive()
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot


async def talk(socket: Socket, *texts: str) -> None:
    for text in texts:
        frames = await socket.chat(text)
        assert frames[-1]["run"]["status"] == "succeeded"


async def snapshot_of(person: Person, conversation_id) -> dict:
    """The snapshot a socket newly opened on the conversation gets."""
    socket = await person.open(conversation_id)
    await socket.close()
    return socket.snapshot


@orm.to_async
def statuses(model) -> list[tuple[str]]:
    """(status,) of each row of the model's table: Run, Approval, ToolExecution."""
    return list(model.objects.values_list("status"))


@orm.to_async
def sql_rows(sql: str, params=()) -> list[tuple]:
    """The rows of a query on the test database (placeholders `%s` on either backend)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


@sync_to_async
def logged_in_client(user: User) -> Client:
    """Django's test client with the user's session: it sends the CSRF token's checks off,
    as a page of the app would pass them."""
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def fast_passwords(settings):
    """Users log in with a password: a cheap hash, as what is tested is not the hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def app_log():
    """What the app's log handler (settings.LOGGING's console handler, with its filters)
    writes during the test: the log a server process writes. Its level is the root
    logger's (LOG_LEVEL); a test may lower it with caplog.set_level."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecrets) for f in h.filters))
    written = io.StringIO()
    previous = handler.setStream(written)
    yield written
    handler.setStream(previous)


async def logged_in_through_the_form(username: str, password: str) -> Browser:
    """A browser logged in as a person does: the log-in page (for its CSRF cookie), the
    form posted with the token and the password, then a page for the CSRF cookie the
    log-in rotated."""
    made = Browser()
    await made.client.get("/accounts/login/")
    form = {"username": username, "password": password, "csrfmiddlewaretoken": made.client.cookies["csrftoken"].value}
    response = await made.client.post("/accounts/login/", form, headers={"Referer": f"{Browser.ORIGIN}/accounts/login/"})
    assert response.status_code == 302, response.content
    await made.client.get("/")
    return made

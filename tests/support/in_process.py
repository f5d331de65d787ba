"""The app in the test's own process: the agent runtime on the test's event loop, and
websockets through channels' WebsocketCommunicator against chatproject.asgi.

For tests marked `django_db(transaction=True)`: the runtime's saver and the ORM threads
write to the test database and commit, as the server does.
"""

from __future__ import annotations

import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client

from conversations.checkpoints import CHECKPOINT_TABLES_POSTGRES, CHECKPOINT_TABLES_SQLITE
from conversations.runs import runtime as runtime_module
from chatproject.asgi import application
from conversations import orm, services

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
    return services.conversation_create(user=user)


async def websocket(cookie: str, conversation_id) -> tuple[WebsocketCommunicator, dict]:
    """A socket open on the conversation, and its snapshot."""
    socket = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation_id}/",
        headers=[(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie.encode())],
    )
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
        return await orm.to_async(services.conversation_create)(user=self.user, **fields)

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

"""The app's websocket in this test's process: the ASGI application driven by channels'
WebsocketCommunicator, logged in with a real session cookie, with the agent runtime
(checkpointer, executor) started on the test's event loop and closed after it.

For tests where no process boundary is the point: they run in milliseconds where a
daphne process takes a second to start. Use them with `django_db(transaction=True)`:
the executor's ORM calls run on other threads, which must see the test's rows.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from agent.runtime import close_runtime
from conversations import orm, services

HOST = "localhost"
TIMEOUT = 30


class Socket:
    """One websocket to a conversation, as a browser opens it."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator

    async def send(self, frame: dict) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def receive(self, timeout: float = TIMEOUT) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_until(self, predicate, timeout: float = TIMEOUT) -> list[dict]:
        """Frames up to and including the first that matches."""
        frames = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frames.append(await self.receive(max(0.1, deadline - asyncio.get_running_loop().time())))
            if predicate(frames[-1]):
                return frames

    async def chat(self, content: str, **extra) -> list[dict]:
        """Send a message; every frame up to the end of its run."""
        await self.send({"type": "message.send", "content": content, **extra})
        return await self.receive_until(run_ended)

    async def close(self) -> None:
        await self.communicator.disconnect()


def run_ended(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"succeeded", "failed", "cancelled"}


def run_waiting(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] == "waiting"


class Person:
    """A user with a session, who opens websockets to their conversations."""

    def __init__(self, user: User, cookie: str):
        self.user = user
        self.cookie = cookie

    async def conversation(self, **fields):
        return await orm.to_async(services.conversation_create)(user=self.user, **fields)

    async def open(self, conversation_id) -> Socket:
        communicator = WebsocketCommunicator(
            _application(),
            f"/ws/conversations/{conversation_id}/",
            headers=[(b"host", HOST.encode()), (b"origin", f"http://{HOST}".encode()),
                     (b"cookie", self.cookie.encode())],
        )
        connected, code = await communicator.connect(timeout=TIMEOUT)
        assert connected, f"the socket was refused ({code})"
        socket = Socket(communicator)
        snapshot = await socket.receive()
        assert snapshot["type"] == "snapshot", snapshot
        socket.snapshot = snapshot
        return socket


def _application():
    from chatproject.asgi import application

    return application


@sync_to_async
def _person(username: str) -> Person:
    user = User.objects.create_user(username, password="pw")
    client = Client()
    client.force_login(user)
    return Person(user, f"sessionid={client.cookies['sessionid'].value}")


@pytest.fixture
async def people(settings):
    """A function that makes a logged-in user; the runtime is closed after the test."""
    settings.ALLOWED_HOSTS = [HOST]
    made = []

    async def make(username: str = "alice") -> Person:
        made.append(await _person(username))
        return made[-1]

    yield make
    await close_runtime()
    await sync_to_async(_close_orm_connections)()


def _close_orm_connections() -> None:
    """The ORM threads' connections (PostgreSQL) are closed, so the test database can be dropped."""
    if orm._executor is None:
        return
    from django.conf import settings

    every_thread = threading.Barrier(settings.ORM_THREADS)

    def disconnect():
        connections.close_all()
        every_thread.wait(timeout=10)  # holds this thread, so each thread runs one

    for done in [orm._executor.submit(disconnect) for _ in range(settings.ORM_THREADS)]:
        done.result()

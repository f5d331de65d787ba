"""History and recall survive a real server process killed with SIGKILL."""

import pytest

from tests.live import Session, chat, receive

pytestmark = pytest.mark.asyncio


async def test_history_and_recall_survive_sigkill(server):
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        for text in ["remember the milk", "and the eggs"]:
            await chat(ws, text)
        before = (await _snapshot(alice, conversation))["messages"]

    server.kill()
    server.start()

    alice = Session(server, "alice")  # sessions live in the database: a new login is not needed, but cheap
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        assert snapshot["messages"] == before
        frames = await chat(ws, "recall")
    assert frames[-2]["message"]["content"] == "remember the milk\nand the eggs"


async def test_the_session_cookie_still_works_after_sigkill(server):
    alice = Session(server, "alice")
    conversation = alice.create_conversation("kept")
    server.kill()
    server.start()
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/").json()["title"] == "kept"


async def _snapshot(session, conversation):
    async with session.websocket(conversation["id"]) as ws:
        return await receive(ws)

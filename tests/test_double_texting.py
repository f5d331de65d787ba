"""A message sent while a run is active: queued (default), rejected, or interrupting."""

import pytest

from tests.live import Session, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio


def finished(run_id):
    return lambda f: f["type"] == "run" and f["run"]["id"] == run_id and f["run"]["status"] in {"succeeded", "cancelled", "failed"}


async def start_long_reply(ws) -> str:
    await send(ws, {"type": "message.send", "content": "slow 400"})
    frames = await receive_until(ws, lambda f: f["type"] == "token")
    return [f for f in frames if f["type"] == "run"][0]["run"]["id"]


async def test_queue_runs_the_second_message_after_the_first(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        first = await start_long_reply(ws)
        await send(ws, {"type": "message.send", "content": "second"})
        frames = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "succeeded"
                                     and f["run"]["id"] != first)
    ended = [f["run"]["id"] for f in frames if f["type"] == "run" and f["run"]["status"] == "succeeded"]
    assert ended[0] == first and len(ended) == 2
    replies = [f["message"]["content"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
    assert replies[0].endswith("tick400") and replies[1] == 'You said: "second"'


async def test_reject_refuses_the_message_and_stores_nothing(make_server, database):
    alice = Session(make_server(DOUBLE_TEXTING="reject").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        first = await start_long_reply(ws)
        before = database.counts()
        await send(ws, {"type": "message.send", "content": "too soon", "client_id": "x1"})
        error = await receive_until(ws, lambda f: f["type"] == "error")
        assert error[-1]["code"] == "conflict"
        assert database.counts() == before
        await receive_until(ws, finished(first))
        await send(ws, {"type": "message.send", "content": "now", "client_id": "x1"})
        frames = await receive_until(ws, run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"


async def test_interrupt_cancels_the_active_run_and_starts_the_new_one(make_server):
    alice = Session(make_server(DOUBLE_TEXTING="interrupt").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        first = await start_long_reply(ws)
        await send(ws, {"type": "message.send", "content": "change of plan"})
        frames = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["id"] != first
                                     and f["run"]["status"] == "succeeded")
    statuses = {f["run"]["id"]: f["run"]["status"] for f in frames if f["type"] == "run"}
    assert statuses[first] == "cancelled"
    replies = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
    assert replies[0]["stopped"] is True and not replies[0]["content"].endswith("tick400")
    assert replies[-1]["content"] == 'You said: "change of plan"'


async def test_a_full_queue_refuses_the_next_message_and_stores_nothing(make_server, database):
    alice = Session(make_server(RUN_QUEUE_MAX="2").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await start_long_reply(ws)
        for text in ("second", "third"):
            await send(ws, {"type": "message.send", "content": text})
            await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "queued")
        before = database.counts()
        await send(ws, {"type": "message.send", "content": "fourth", "client_id": "c-4"})
        refused = await receive_until(ws, lambda f: f["type"] == "error")
        assert refused[-1]["code"] == "conflict" and "2 messages already wait" in refused[-1]["message"]
        assert database.counts() == before
        await send(ws, {"type": "run.cancel"})
        await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "cancelled")
        # Once one has started, there is room again, and the same client_id is accepted.
        await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "running")
        await send(ws, {"type": "message.send", "content": "fourth", "client_id": "c-4"})
        accepted = await receive_until(ws, lambda f: f["type"] == "message" and f["message"]["content"] == "fourth")
        assert accepted[-1]["message"]["role"] == "user"

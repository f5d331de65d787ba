"""Per-user limits: messages and approval decisions per time window, open websockets."""

import asyncio
import time
from contextlib import asynccontextmanager

import pytest
import websockets

from tests.live import Session, chat, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio

CLOSE_TOO_MANY_SOCKETS = 4429
EMAIL = "email bob@example.com Lunch: see you at noon"


def is_error(frame) -> bool:
    return frame["type"] == "error"


async def refusal(ws, frame: dict) -> dict:
    """Send a frame that must be rate limited; the error frame."""
    await send(ws, frame)
    error = (await receive_until(ws, is_error))[-1]
    assert error["code"] == "rate_limited", error
    assert error["message"] and isinstance(error["retry_after"], (int, float)), error
    return error


async def refused_close_code(session: Session, conversation_id: str) -> int:
    async with session.websocket(conversation_id) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
    return closed.value.rcvd.code


@asynccontextmanager
async def socket_once_free(session: Session, conversation_id: str, timeout: float = 5):
    """A socket opened as soon as the user has a free slot (retried while refused)."""
    deadline = time.monotonic() + timeout
    while True:
        ws = await session.websocket(conversation_id)
        try:
            await receive(ws)
            break
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == CLOSE_TOO_MANY_SOCKETS
            assert time.monotonic() < deadline, "the slot was never freed"
            await asyncio.sleep(0.1)
    try:
        yield ws
    finally:
        await ws.close()


async def test_a_flood_of_messages_is_refused_stores_nothing_and_ends_after_retry_after(make_server, database):
    alice = Session(make_server(RATE_LIMIT_MESSAGES="2/3").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        first = await chat(ws, "one")
        second = await chat(ws, "two")
        asked, answered = first[0]["message"], second[-2]["message"]
        before = database.counts()
        errors = [
            await refusal(ws, {"type": "message.send", "content": "three"}),
            await refusal(ws, {"type": "message.edit", "message_id": asked["id"], "content": "one, edited"}),
            await refusal(ws, {"type": "message.regenerate", "message_id": answered["id"]}),
        ]
        assert database.counts() == before
        assert all(0 < error["retry_after"] <= 3 for error in errors)
        # Refusals were not counted: once the first message leaves the window, one more fits.
        await asyncio.sleep(errors[-1]["retry_after"] + 0.05)
        frames = await chat(ws, "three")
    assert frames[0]["message"]["content"] == "three" and frames[-1]["run"]["status"] == "succeeded"


async def test_the_message_limit_counts_each_user_across_sockets_and_conversations(make_server, database):
    server = make_server(RATE_LIMIT_MESSAGES="1/60").start()
    alice, bob = Session(server, "alice"), Session(server, "bob")
    mine, other = alice.create_conversation()["id"], alice.create_conversation()["id"]
    async with alice.websocket(mine) as ws, alice.websocket(other) as second_tab:
        await receive(ws)
        await receive(second_tab)
        await chat(ws, "hello")
        before = database.counts()
        error = await refusal(second_tab, {"type": "message.send", "content": "elsewhere"})
        assert 55 < error["retry_after"] <= 60
        assert database.counts() == before
    async with bob.websocket(bob.create_conversation()["id"]) as ws:
        await receive(ws)
        frames = await chat(ws, "bob is not limited by alice")
    assert frames[-1]["run"]["status"] == "succeeded"


async def test_a_frame_sent_again_with_its_client_id_is_not_counted_against_the_limit(make_server, database):
    alice = Session(make_server(RATE_LIMIT_MESSAGES="1/60").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        first = {"type": "message.send", "content": "hello", "client_id": "c-1"}
        await send(ws, first)
        reply = [f for f in await receive_until(ws, run_ended) if f["type"] == "message"][-1]["message"]
        before = database.counts()
        await send(ws, first)  # a client retrying after a reconnect
        # An edit or a regeneration sent again with an id already used is not counted either.
        await send(ws, {"type": "message.regenerate", "message_id": reply["id"], "client_id": "c-1"})
        await send(ws, {"type": "ping"})
        assert [frame["type"] for frame in await receive_until(ws, lambda f: f["type"] == "pong")] == ["pong"]
        assert database.counts() == before
        await refusal(ws, {"type": "message.send", "content": "a new one", "client_id": "c-2"})


async def test_decisions_are_limited_and_a_refused_one_decides_nothing(make_server, database):
    alice = Session(make_server(RATE_LIMIT_DECISIONS="2/3").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": EMAIL})
        frames = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "waiting")
        approval = [f["approval"] for f in frames if f["type"] == "approval"][0]
        for unknown in ("nope-1", "nope-2"):  # decisions count whatever their outcome
            await send(ws, {"type": "approval.decide", "approval_id": unknown, "decision": "approve"})
            assert (await receive_until(ws, is_error))[-1]["code"] == "not_found"
        decide = {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"}
        error = await refusal(ws, decide)
        assert 0 < error["retry_after"] <= 3
        assert database.query("SELECT status FROM conversations_approval") == [("pending",)]
        assert database.query("SELECT status FROM conversations_run") == [("waiting",)]
        # Messages have a limit of their own.
        await send(ws, {"type": "message.send", "content": "queued meanwhile"})
        await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "queued")

        await asyncio.sleep(error["retry_after"] + 0.05)
        await send(ws, decide)
        frames = await receive_until(ws, run_ended)
    assert [f["approval"]["status"] for f in frames if f["type"] == "approval"] == ["approved"]
    assert frames[-1]["run"]["status"] == "succeeded"


async def test_one_socket_over_the_cap_is_closed_with_4429_and_a_closed_socket_frees_its_slot(make_server):
    server = make_server(WS_MAX_SOCKETS_PER_USER="2").start()
    alice, bob = Session(server, "alice"), Session(server, "bob")
    mine, other = alice.create_conversation()["id"], alice.create_conversation()["id"]
    async with alice.websocket(mine) as first, alice.websocket(other) as second:
        await receive(first)
        await receive(second)
        assert await refused_close_code(alice, mine) == CLOSE_TOO_MANY_SOCKETS
        assert await refused_close_code(alice, other) == CLOSE_TOO_MANY_SOCKETS
        async with bob.websocket(bob.create_conversation()["id"]) as bobs:
            assert (await receive(bobs))["type"] == "snapshot"
        # The open sockets still work.
        assert (await chat(second, "still here"))[-1]["run"]["status"] == "succeeded"
        await first.close()
        async with socket_once_free(alice, mine) as third:
            assert (await chat(third, "in the freed slot"))[-1]["run"]["status"] == "succeeded"
            assert await refused_close_code(alice, other) == CLOSE_TOO_MANY_SOCKETS


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.postgres
@pytest.mark.redis
async def test_two_server_processes_share_each_users_limits(make_server, database):
    env = {"RATE_LIMIT_MESSAGES": "1/60", "WS_MAX_SOCKETS_PER_USER": "1"}
    first, second = make_server(**env).start(), make_server(**env).start()
    on_first, on_second = Session(first, "alice"), Session(second, "alice")
    conversation = on_first.create_conversation()["id"]
    async with on_first.websocket(conversation) as ws:
        await receive(ws)
        await chat(ws, "hello")
        assert await refused_close_code(on_second, conversation) == CLOSE_TOO_MANY_SOCKETS
    before = database.counts()
    async with socket_once_free(on_second, conversation) as ws:
        await refusal(ws, {"type": "message.send", "content": "from the other process"})
    assert database.counts() == before


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.postgres
@pytest.mark.redis
async def test_the_slots_of_a_killed_process_lapse_after_the_ttl(make_server):
    ttl = 1.5
    env = {"WS_MAX_SOCKETS_PER_USER": "1", "WS_SOCKET_TTL_SECONDS": str(ttl)}
    doomed, survivor = make_server(**env).start(), make_server(**env).start()
    on_doomed, on_survivor = Session(doomed, "alice"), Session(survivor, "alice")
    conversation = on_doomed.create_conversation()["id"]
    async with on_doomed.websocket(conversation) as ws:
        await receive(ws)
        await asyncio.sleep(ttl + 0.5)  # a live socket keeps its slot past the TTL
        assert await refused_close_code(on_survivor, conversation) == CLOSE_TOO_MANY_SOCKETS
        doomed.kill()
        killed_at = time.monotonic()
        assert await refused_close_code(on_survivor, conversation) == CLOSE_TOO_MANY_SOCKETS
        async with socket_once_free(on_survivor, conversation, timeout=ttl + 2):
            assert time.monotonic() - killed_at <= ttl + 1

"""Per-user limits shared by several server processes through Redis, and the socket
slots of a process killed with SIGKILL. Real processes: the process boundary is the point."""

import asyncio
import time
from contextlib import asynccontextmanager

import pytest
import websockets

from tests.live import Session, chat, receive, receive_until, send, start_together

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres, pytest.mark.redis]

CLOSE_TOO_MANY_SOCKETS = 4429


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


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_two_server_processes_share_each_users_limits(make_server, database):
    env = {"RATE_LIMIT_MESSAGES": "1/60", "WS_MAX_SOCKETS_PER_USER": "1"}
    first, second = start_together(make_server(**env), make_server(**env))
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
async def test_the_slots_of_a_killed_process_lapse_after_the_ttl(make_server):
    ttl = 1.5
    env = {"WS_MAX_SOCKETS_PER_USER": "1", "WS_SOCKET_TTL_SECONDS": str(ttl)}
    doomed, survivor = start_together(make_server(**env), make_server(**env))
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

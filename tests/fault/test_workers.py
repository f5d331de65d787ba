"""README's several-process server: uvicorn's supervisor with worker processes on one
PostgreSQL database and one Redis."""

import asyncio
import contextlib
import os
import signal
import time

import pytest
import websockets

from tests.conftest import require_services
from tests.live import Server, Session, chat, interrupt_mid_reply, receive, receive_until

# xdist_group: under pytest-xdist (`--dist loadgroup`) the module runs in one process,
# so that its tests share one `workers_server`.
pytestmark = [pytest.mark.asyncio, pytest.mark.postgres, pytest.mark.redis, pytest.mark.xdist_group("test_workers")]


@pytest.fixture(scope="module")
def workers_server(templates, tmp_path_factory):
    """One server for the module: each test reads only its own conversations' rows, and
    the supervisor replaces the workers a test kills."""
    require_services("postgres")
    database = templates.new_database("postgres", redis=True)
    log = tmp_path_factory.mktemp("workers") / "uvicorn.log"
    server = Server(database, log, extra_env={"WS_MAX_SOCKETS_PER_USER": "200"}, workers=2).start()
    yield database, server
    server.stop()


async def test_worker_processes_serve_many_conversations_at_once(workers_server):
    database, server = workers_server
    assert len(server.worker_pids()) == 2
    alice = Session(server, "alice")
    conversations = [alice.create_conversation()["id"] for _ in range(8)]

    async def two_turns(conversation_id: str) -> list[str]:
        async with alice.websocket(conversation_id) as ws:
            await receive(ws)
            replies = []
            for words in (3, 4):
                frames = await chat(ws, f"slow {words}")
                replies.append([f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1])
            return [reply["message"]["content"] for reply in replies]

    results = await asyncio.gather(*(two_turns(c) for c in conversations))
    assert results == [["tick1 tick2 tick3", "tick1 tick2 tick3 tick4"]] * 8
    statuses = "SELECT status, count(*) FROM conversations_run WHERE conversation_id::text = ANY(%s) GROUP BY status"
    assert database.query(statuses, (conversations,)) == [("succeeded", 16)]


async def test_new_connections_are_spread_over_the_workers(workers_server):
    _, server = workers_server
    alice = Session(server, "alice")
    conversation = alice.create_conversation()["id"]
    async with contextlib.AsyncExitStack() as stack:
        # All at once, as clients reconnecting after a restart.
        sockets = await asyncio.gather(*(stack.enter_async_context(alice.websocket(conversation)) for _ in range(100)))
        await asyncio.gather(*(receive(ws) for ws in sockets))
        held = server.connections_per_worker()
    assert sum(held.values()) >= 100  # and the session's HTTP connection
    assert min(held.values()) >= 10, held  # every worker takes a share (uvicorn: whichever accepts first)


async def test_a_run_of_a_killed_worker_finishes_after_the_supervisor_replaces_it(workers_server):
    database, server = workers_server
    killed = server.worker_pids()

    def kill_workers() -> None:
        for pid in killed:  # whichever worker runs the reply
            os.kill(pid, signal.SIGKILL)

    alice, conversation = await interrupt_mid_reply(server, kill_workers)
    frames = await _watch_until_succeeded(alice, conversation["id"])
    # The supervisor notices its dead workers one after the other: both are replaced.
    assert await _new_workers(server, 2, killed)
    reply = [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]["message"]
    assert reply["content"].split(" ") == [f"tick{i}" for i in range(1, 201)]
    mine = (conversation["id"],)
    roles = "SELECT role FROM conversations_message WHERE conversation_id::text = %s ORDER BY created_at"
    assert database.query(roles, mine) == [("user",), ("assistant",)]
    assert database.query("SELECT status, attempts FROM conversations_run WHERE conversation_id::text = %s", mine) == [("succeeded", 2)]


async def _new_workers(server: Server, count: int, killed: list[int], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if len(pids) == count and not set(pids) & set(killed):
            return True
        await asyncio.sleep(0.2)
    return False


async def _watch_until_succeeded(session: Session, conversation_id: str, timeout: float = 60) -> list[dict]:
    """Reconnect (the new workers take a moment to start) and follow the run to its end."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.websocket(conversation_id) as ws:
                snapshot = await receive(ws)
                if snapshot["run"] is None:  # it ended before this socket connected
                    return [{"type": "message", "message": m} for m in snapshot["messages"]]
                return await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "succeeded",
                                           timeout=deadline - time.monotonic())
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)

"""Deleting a conversation through one server process while another streams its reply:
the run stops, and leaves no checkpoint row and no stream state in Redis."""

import asyncio
import time

import pytest
import redis
import websockets

from tests.live import Session, receive, receive_until, redis_url, send

pytestmark = pytest.mark.asyncio


async def closed_as_deleted(ws) -> None:
    """The socket is told: `not_found`, then closed with 4404."""
    frames = await receive_until(ws, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "not_found", frames
    with pytest.raises(websockets.ConnectionClosed):
        await receive(ws, timeout=10)
    assert ws.close_code == 4404


async def wait_for_the_run_to_stop(server, run_id: str, deleted: float) -> None:
    """The process executing the run says it stopped it, within a few seconds of the delete."""
    stopped = f"run {run_id} stopped: its conversation was deleted"
    while stopped not in server.log_path.read_text():
        assert time.monotonic() - deleted < 5, "the run did not stop"
        await asyncio.sleep(0.05)


def assert_no_error_logged(*servers) -> None:
    for server in servers:
        log = server.log_path.read_text()
        assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


async def stream_then_delete(runner, deleter, conversation, *watchers) -> str:
    """Start a long reply on `runner`'s socket, delete the conversation through `deleter`
    while it streams; every socket is told. Returns the run's id."""
    async with runner.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 2000"})
        frames = await receive_until(ws, lambda f: f["type"] == "token" and "tick5" in f["delta"])
        assert deleter.request("DELETE", f"/api/conversations/{conversation['id']}/").status_code == 204
        await closed_as_deleted(ws)
        for watcher in watchers:
            await closed_as_deleted(watcher)
    return next(f["run"]["id"] for f in frames if f["type"] == "run")


async def test_deleting_from_another_process_while_a_reply_streams(two_servers):
    database, (runner, other) = two_servers
    alice_runner, alice_other = Session(runner, "alice"), Session(other, "alice")
    conversation = alice_runner.create_conversation()
    async with alice_other.websocket(conversation["id"]) as watcher:
        await receive(watcher)
        deleted = time.monotonic()
        run_id = await stream_then_delete(alice_runner, alice_other, conversation, watcher)
    await wait_for_the_run_to_stop(runner, run_id, deleted)
    assert database.checkpoint_rows(conversation["id"]) == 0
    # Nor does the stream's state stay in Redis.
    client = redis.Redis.from_url(redis_url())
    assert not client.keys(f"chat:*{conversation['id']}*")
    assert_no_error_logged(runner, other)

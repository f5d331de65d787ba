"""Deleting a conversation removes its messages, runs, branches and checkpoint rows; a
reply streaming meanwhile stops, from this process or another, and leaves none either."""

import asyncio
import time

import pytest
import redis
import websockets

from tests.fault.test_two_processes import two_servers  # noqa: F401 (a fixture)
from tests.live import Session, chat, manage, receive, receive_until, redis_url, run_ended, send

pytestmark = pytest.mark.asyncio


async def test_delete_removes_checkpoint_rows(alice, database):
    doomed = alice.create_conversation("doomed")
    kept = alice.create_conversation("kept")
    for conversation in (doomed, kept):
        async with alice.websocket(conversation["id"]) as ws:
            await receive(ws)
            frames = await chat(ws, "time")  # a tool call: checkpoints, blobs and writes
            if conversation is doomed:  # and a second version, with checkpoints of its own
                await send(ws, {"type": "message.edit", "message_id": frames[0]["message"]["id"], "content": "edited"})
                await receive_until(ws, run_ended)
    assert database.checkpoint_rows(doomed["id"]) > 0
    assert database.count("conversations_branch") == 2
    kept_rows = database.checkpoint_rows(kept["id"])

    assert alice.request("DELETE", f"/api/conversations/{doomed['id']}/").status_code == 204

    assert database.checkpoint_rows(doomed["id"]) == 0
    assert database.count("conversations_message", "conversation_id = %s", (doomed["id"].replace("-", "") if database.backend == "sqlite" else doomed["id"],)) == 0
    assert database.checkpoint_rows(kept["id"]) == kept_rows
    assert database.count("conversations_branch") == 0
    assert alice.request("GET", f"/api/conversations/{doomed['id']}/").status_code == 404
    assert [c["id"] for c in alice.request("GET", "/api/conversations/").json()["results"]] == [kept["id"]]


async def test_deleting_a_user_removes_the_checkpoints_of_their_conversations(alice, bob, database):
    theirs, kept = bob.create_conversation("bob's"), alice.create_conversation("alice's")
    for session, conversation in ((bob, theirs), (alice, kept)):
        async with session.websocket(conversation["id"]) as ws:
            await receive(ws)
            await chat(ws, "time")
    kept_rows = database.checkpoint_rows(kept["id"])
    assert database.checkpoint_rows(theirs["id"]) > 0

    # The ORM path the admin takes too: a cascade from the user to the conversations.
    manage(database.env, "shell", "-c", "from django.contrib.auth.models import User; User.objects.get(username='bob').delete()")

    assert database.checkpoint_rows(theirs["id"]) == 0
    assert database.checkpoint_rows(kept["id"]) == kept_rows


# ------------------------------------------------------------ deleted while a reply streams


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


async def test_deleting_while_a_reply_streams_stops_the_run_and_leaves_no_checkpoint_row(server, alice, database):
    conversation = alice.create_conversation()
    deleted = time.monotonic()
    run_id = await stream_then_delete(alice, alice, conversation)
    await wait_for_the_run_to_stop(server, run_id, deleted)
    assert database.checkpoint_rows(conversation["id"]) == 0
    assert database.count("conversations_run") == 0
    assert_no_error_logged(server)


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

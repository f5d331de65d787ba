"""Deleting a conversation removes its messages, runs, branches and checkpoint rows; a
reply streaming meanwhile stops and leaves none either. In-process; from another
process: tests/fault/test_delete_from_another_process.py."""

import asyncio
import logging
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from conversations.models import Branch, Message, Run
from tests.support.in_process import TIMEOUT, checkpoint_rows, logged_in_client, run_ended

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def count(model, **filters) -> int:
    return model.objects.filter(**filters).count()


@sync_to_async
def delete_user(username: str) -> None:
    User.objects.get(username=username).delete()


async def test_delete_removes_checkpoint_rows(people):
    alice = await people()
    doomed, kept = await alice.conversation(title="doomed"), await alice.conversation(title="kept")
    for conversation in (doomed, kept):
        socket = await alice.open(conversation.id)
        frames = await socket.chat("time")  # a tool call: checkpoints, blobs and writes
        if conversation is doomed:  # and a second version, with checkpoints of its own
            await socket.send({"type": "message.edit", "message_id": frames[0]["message"]["id"], "content": "edited"})
            await socket.receive_until(run_ended)
        await socket.close()
    assert await checkpoint_rows(doomed.id) > 0
    assert await count(Branch) == 2
    kept_rows = await checkpoint_rows(kept.id)
    client = await logged_in_client(alice.user)

    assert (await sync_to_async(client.delete)(f"/api/conversations/{doomed.id}/")).status_code == 204

    assert await checkpoint_rows(doomed.id) == 0
    assert await count(Message, conversation_id=doomed.id) == 0
    assert await checkpoint_rows(kept.id) == kept_rows
    assert await count(Branch) == 0
    assert (await sync_to_async(client.get)(f"/api/conversations/{doomed.id}/")).status_code == 404
    listed = (await sync_to_async(client.get)("/api/conversations/")).json()["results"]
    assert [c["id"] for c in listed] == [str(kept.id)]


async def test_deleting_a_user_removes_the_checkpoints_of_their_conversations(people):
    alice, bob = await people("alice"), await people("bob")
    theirs, kept = await bob.conversation(title="bob's"), await alice.conversation(title="alice's")
    for person, conversation in ((bob, theirs), (alice, kept)):
        socket = await person.open(conversation.id)
        await socket.chat("time")
        await socket.close()
    kept_rows = await checkpoint_rows(kept.id)
    assert await checkpoint_rows(theirs.id) > 0

    # The ORM path the admin takes too: a cascade from the user to the conversations.
    await delete_user("bob")

    assert await checkpoint_rows(theirs.id) == 0
    assert await checkpoint_rows(kept.id) == kept_rows


async def closed_as_deleted(socket) -> None:
    """The socket is told, whatever it was streaming: `not_found`, then closed with 4404."""
    frames = await socket.receive_until(lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "not_found", frames
    assert await socket.communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4404}


async def test_deleting_while_a_reply_streams_stops_the_run_and_leaves_no_checkpoint_row(people, caplog):
    caplog.set_level(logging.INFO)
    alice = await people()
    conversation = await alice.conversation()
    client = await logged_in_client(alice.user)
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": "slow 2000"})
    frames = await socket.receive_until(lambda f: f["type"] == "token" and "tick5" in f["delta"])
    run_id = next(f["run"]["id"] for f in frames if f["type"] == "run")
    deleted = time.monotonic()
    assert (await sync_to_async(client.delete)(f"/api/conversations/{conversation.id}/")).status_code == 204
    await closed_as_deleted(socket)

    # The run says it stopped, within a few seconds of the delete.
    while f"run {run_id} stopped: its conversation was deleted" not in caplog.messages:
        assert time.monotonic() - deleted < 5, "the run did not stop"
        await asyncio.sleep(0.05)
    assert await checkpoint_rows(conversation.id) == 0
    assert await count(Run) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]

"""Deleting a conversation removes its messages, runs, branches and checkpoint rows."""

import pytest

from tests.live import chat, manage, receive, receive_until, run_ended, send

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

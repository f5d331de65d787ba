"""Deleting a conversation removes its messages, runs, branches and checkpoint rows."""

import pytest

from tests.live import chat, receive, receive_until, run_ended, send

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

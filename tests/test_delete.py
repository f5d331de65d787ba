"""Deleting a conversation removes its messages, runs and checkpoint rows."""

import pytest

from tests.live import chat, receive

pytestmark = pytest.mark.asyncio


async def test_delete_removes_checkpoint_rows(alice, database):
    doomed = alice.create_conversation("doomed")
    kept = alice.create_conversation("kept")
    for conversation in (doomed, kept):
        async with alice.websocket(conversation["id"]) as ws:
            await receive(ws)
            await chat(ws, "time")  # a tool call: checkpoints, blobs and writes
    assert database.checkpoint_rows(doomed["id"]) > 0
    kept_rows = database.checkpoint_rows(kept["id"])

    assert alice.request("DELETE", f"/api/conversations/{doomed['id']}/").status_code == 204

    assert database.checkpoint_rows(doomed["id"]) == 0
    assert database.count("conversations_message", "conversation_id = %s", (doomed["id"].replace("-", "") if database.backend == "sqlite" else doomed["id"],)) == 0
    assert database.checkpoint_rows(kept["id"]) == kept_rows
    assert alice.request("GET", f"/api/conversations/{doomed['id']}/").status_code == 404
    assert [c["id"] for c in alice.request("GET", "/api/conversations/").json()["results"]] == [kept["id"]]

"""Stop: run.cancel ends the run within a second and keeps the partial reply."""

import time

import pytest

from tests.live import chat, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio


async def test_cancel_keeps_the_partial_reply_and_the_next_message_works(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 2000"})
        frames = await receive_until(ws, lambda f: f["type"] == "token" and "tick5" in f["delta"])
        run_id = frames[1]["run"]["id"]
        asked = time.monotonic()
        await send(ws, {"type": "run.cancel", "run_id": run_id})
        frames += await receive_until(ws, run_ended, timeout=5)
        assert time.monotonic() - asked < 1.0
        assert (frames[-1]["run"]["id"], frames[-1]["run"]["status"]) == (run_id, "cancelled")

        partial = [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
        assert len(partial) == 1 and partial[0]["message"]["stopped"] is True
        streamed = "".join(f["delta"] for f in frames if f["type"] == "token")
        assert partial[0]["message"]["content"] == streamed
        assert streamed.startswith("tick1 tick2 tick3 tick4 tick5") and "tick2000" not in streamed

        await send(ws, {"type": "run.cancel", "run_id": run_id})
        assert (await receive(ws))["code"] == "conflict"

        after = await chat(ws, "hello again")
        assert after[-1]["run"]["status"] == "succeeded"
    assert database.count("conversations_run", "status = %s", ("cancelled",)) == 1

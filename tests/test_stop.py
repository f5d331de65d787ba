"""Stop: run.cancel ends the run within a second and keeps the partial reply."""

import time

import pytest

from tests.live import Session, chat, receive, receive_until, run_ended, send
from tests.support.frames import EMAIL
from tests.support.mail import mails

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


async def test_stop_right_after_an_approval_card_appears_leaves_no_approval_pending(mail_server, mail_dir):
    """Stop as soon as the card is out: the run may still be `running` (tests/agent/
    test_run_endings.py stops it there for sure) or already `waiting`; either way its
    approval is rejected as it ends, and approving it afterwards is a conflict."""
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": EMAIL})
        card = (await receive_until(ws, lambda f: f["type"] == "approval"))[-1]["approval"]
        await send(ws, {"type": "run.cancel"})
        frames = await receive_until(ws, run_ended)
        assert frames[-1]["run"]["status"] == "cancelled"
        settled = [(f["approval"]["id"], f["approval"]["status"]) for f in frames if f["type"] == "approval"]
        assert settled == [(card["id"], "rejected")]
        await send(ws, {"type": "approval.decide", "approval_id": card["id"], "decision": "approve"})
        assert (await receive(ws))["code"] == "conflict"
    assert alice.request("GET", "/api/approvals/?status=pending").json()["results"] == []
    assert mails(mail_dir) == []

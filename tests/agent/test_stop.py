"""Stop: run.cancel ends the run within a second and keeps the partial reply.
In-process, through the websocket."""

import time

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Run
from tests.support.in_process import logged_in_client, run_ended
from tests.support.frames import EMAIL

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def cancelled_runs() -> int:
    return Run.objects.filter(status=Run.Status.CANCELLED).count()


async def test_cancel_keeps_the_partial_reply_and_the_next_message_works(people):
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": "slow 2000"})
    frames = await socket.receive_until(lambda f: f["type"] == "token" and "tick5" in f["delta"])
    run_id = frames[1]["run"]["id"]
    asked = time.monotonic()
    await socket.send({"type": "run.cancel", "run_id": run_id})
    frames += await socket.receive_until(run_ended)
    assert time.monotonic() - asked < 1.0
    assert (frames[-1]["run"]["id"], frames[-1]["run"]["status"]) == (run_id, "cancelled")

    partial = [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
    assert len(partial) == 1 and partial[0]["message"]["stopped"] is True
    streamed = "".join(f["delta"] for f in frames if f["type"] == "token")
    assert partial[0]["message"]["content"] == streamed
    assert streamed.startswith("tick1 tick2 tick3 tick4 tick5") and "tick2000" not in streamed

    await socket.send({"type": "run.cancel", "run_id": run_id})
    assert (await socket.receive())["code"] == "conflict"

    after = await socket.chat("hello again")
    assert after[-1]["run"]["status"] == "succeeded"
    await socket.close()
    assert await cancelled_runs() == 1


async def test_stop_right_after_an_approval_card_appears_leaves_no_approval_pending(people, mailoutbox):
    """Stop as soon as the card is out: the run may still be `running` (tests/agent/
    test_run_endings.py stops it there for sure) or already `waiting`; either way its
    approval is rejected as it ends, and approving it afterwards is a conflict."""
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": EMAIL})
    card = (await socket.receive_until(lambda f: f["type"] == "approval"))[-1]["approval"]
    await socket.send({"type": "run.cancel"})
    frames = await socket.receive_until(run_ended)
    assert frames[-1]["run"]["status"] == "cancelled"
    settled = [(f["approval"]["id"], f["approval"]["status"]) for f in frames if f["type"] == "approval"]
    assert settled == [(card["id"], "rejected")]
    await socket.send({"type": "approval.decide", "approval_id": card["id"], "decision": "approve"})
    assert (await socket.receive())["code"] == "conflict"
    await socket.close()
    client = await logged_in_client(alice.user)
    pending = await sync_to_async(client.get)("/api/approvals/?status=pending")
    assert pending.json()["results"] == []
    assert mailoutbox == []

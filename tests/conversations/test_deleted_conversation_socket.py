"""A socket on a conversation that is deleted: told at once (`not_found`, then closed with
4404), and a frame that reaches it before it is told gets the same; never a crash."""

import logging

import pytest

from conversations import consumers, events
from conversations.services.conversations import aconversation_delete
from tests.support.in_process import closed_as_deleted, new_conversation, signed_in, websocket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_every_socket_on_a_deleted_conversation_is_told_at_once(agent_runtime, caplog):
    user, cookie = await signed_in("alice")
    conversation = await new_conversation(user)
    first, _ = await websocket(cookie, conversation.id)
    second, _ = await websocket(cookie, conversation.id)

    await aconversation_delete(conversation=conversation)

    await closed_as_deleted(first)
    await closed_as_deleted(second)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# Every frame type the socket takes, each naming something of the conversation.
FRAMES = {
    "message.send": {"content": "hello"},
    "message.edit": {"message_id": "00000000-0000-0000-0000-000000000000", "content": "x"},
    "message.regenerate": {"message_id": "00000000-0000-0000-0000-000000000000"},
    "branch.switch": {"branch_id": "00000000-0000-0000-0000-000000000000"},
    "run.cancel": {},
    "run.retry": {"run_id": "00000000-0000-0000-0000-000000000000"},
    "approval.decide": {"approval_id": "unknown", "decision": "approve"},
}


@pytest.mark.parametrize("frame_type", sorted(FRAMES))
async def test_a_frame_that_reaches_the_socket_before_it_is_told_gets_not_found_then_a_close(
    frame_type, agent_runtime, monkeypatch, caplog
):
    """As a socket whose process has not heard of the delete yet (it is told over the
    channel layer, after the commit)."""
    monkeypatch.setattr(events, "publish_deleted", events.forget)
    user, cookie = await signed_in("alice")
    conversation = await new_conversation(user)
    socket, _ = await websocket(cookie, conversation.id)
    await aconversation_delete(conversation=conversation)

    await socket.send_json_to({"type": frame_type, **FRAMES[frame_type]})

    await closed_as_deleted(socket)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_every_frame_type_is_tried():
    assert set(FRAMES) | {"ping"} == set(consumers.ConversationConsumer.HANDLERS)


async def test_a_frame_sent_after_the_close_is_not_answered(agent_runtime):
    user, cookie = await signed_in("alice")
    conversation = await new_conversation(user)
    socket, _ = await websocket(cookie, conversation.id)
    await aconversation_delete(conversation=conversation)
    await closed_as_deleted(socket)

    await socket.send_json_to({"type": "ping"})

    assert await socket.receive_nothing(timeout=0.5)

"""conversations.events on Redis: seq and the frame's publication are one step."""

import asyncio
import json
import uuid

import pytest
from channels.layers import get_channel_layer

from conversations import events

pytestmark = [pytest.mark.redis]


async def test_concurrent_events_reach_a_socket_in_seq_order(redis_layer):
    conversation_id = str(uuid.uuid4())
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(conversation_id), channel)
    try:
        # Many publishers at once, on the pool's several connections: a seq taken in one
        # round trip and published in another could arrive out of order.
        sent = await asyncio.gather(
            *(events.publish(conversation_id, {"type": "tool", "n": n}) for n in range(300)),
            *(events.publish_token(conversation_id, run_id="r", message_id="m", delta=f"{n} ") for n in range(300)),
        )
        received = []
        while len(received) < 600:
            received += [json.loads(text) for text in (await layer.receive(channel))["texts"]]
        seq, partials = await events.stream_state(conversation_id)
    finally:
        await layer.group_discard(events.group_name(conversation_id), channel)
        await events.forget(conversation_id)
    assert sorted(sent) == list(range(1, 601))
    assert [frame["seq"] for frame in received] == list(range(1, 601))
    assert seq == 600
    # The reply so far holds the tokens in seq order, as a client applying them would.
    tokens = [frame["delta"] for frame in received if frame["type"] == "token"]
    assert partials == [{"message_id": "m", "run_id": "r", "content": "".join(tokens)}]


@pytest.fixture
def watched(redis_layer):
    """A conversation, and a channel of its group as a socket's."""

    async def watch():
        conversation_id = str(uuid.uuid4())
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.group_name(conversation_id), channel)
        return conversation_id, layer, channel

    return watch


async def test_frames_published_together_are_numbered_in_order_and_sent_as_one_message(watched):
    conversation_id, layer, channel = await watched()
    try:
        await events.publish(conversation_id, {"type": "first"})
        last = await events.publish(conversation_id, {"type": "message"}, {"type": "run", "n": 1}, {"type": "run", "n": 2})
        first, together = await layer.receive(channel), await layer.receive(channel)
    finally:
        await events.forget(conversation_id)
    assert last == 4
    assert [json.loads(text) for text in first["texts"]] == [{"seq": 1, "type": "first"}]
    assert [json.loads(text) for text in together["texts"]] == [
        {"seq": 2, "type": "message"}, {"seq": 3, "type": "run", "n": 1}, {"seq": 4, "type": "run", "n": 2}
    ]


async def test_a_stored_message_ends_its_partial_text_in_the_step_that_publishes_it(watched):
    conversation_id, layer, channel = await watched()
    try:
        await events.publish_token(conversation_id, run_id="r", message_id="m", delta="hel")
        await events.publish_token(conversation_id, run_id="r", message_id="other", delta="still streaming")
        stored = await events.publish_stored(conversation_id, {"type": "message"}, run_id="r", message_id="m")
        state = await events.stream_state(conversation_id)
        received = [json.loads((await layer.receive(channel))["texts"][0]) for _ in range(3)]
    finally:
        await events.forget(conversation_id)
    assert stored == 3 and received[-1] == {"seq": 3, "type": "message"}
    assert state == (3, [{"message_id": "other", "run_id": "r", "content": "still streaming"}])


async def test_forgetting_a_conversation_leaves_no_key_of_it(watched):
    conversation_id, _, _ = await watched()
    for message_id in ("m1", "m2"):
        await events.publish_token(conversation_id, run_id="r", message_id=message_id, delta="hello")
    assert await events.redis_client().keys(f"chat:*{conversation_id}*")

    await events.forget(conversation_id)

    assert await events.redis_client().keys(f"chat:*{conversation_id}*") == []

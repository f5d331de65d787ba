"""conversations.redis_group_publish writes channels_redis's messages itself: written for
one version of channels_redis, and read by its layer as a group_send's."""

import importlib.metadata
import json
import uuid

import pytest
from channels.layers import get_channel_layer

from conversations import events

pytestmark = [pytest.mark.redis]


def test_written_for_this_version_of_channels_redis():
    assert importlib.metadata.version("channels-redis") == "4.3.0", (
        "conversations/redis_group_publish.py publishes as RedisPubSubChannelLayer.group_send does: check that "
        "_get_group_channel_name still names a group's Redis channel and that the message is still plain msgpack "
        "published there (bench/event_publish.py says whether the script still pays), then update this version"
    )


async def test_a_layer_receives_the_scripts_message_as_a_group_sends(redis_layer):  # noqa: F811
    conversation_id = str(uuid.uuid4())
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(conversation_id), channel)
    try:
        seq = await events.publish(conversation_id, {"type": "tool", "n": 1}, {"type": "tool", "n": 2})
        await layer.group_send(events.group_name(conversation_id), {"type": "conversation.event", "texts": ["x"]})
        by_script, by_group_send = await layer.receive(channel), await layer.receive(channel)
    finally:
        await layer.group_discard(events.group_name(conversation_id), channel)
        await events.forget(conversation_id)
    assert by_script["type"] == "conversation.event"
    assert [json.loads(text) for text in by_script["texts"]] == [
        {"seq": seq - 1, "type": "tool", "n": 1}, {"seq": seq, "type": "tool", "n": 2}]
    assert by_group_send.keys() == by_script.keys()

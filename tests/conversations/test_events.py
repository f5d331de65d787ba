"""conversations.events on Redis: seq and the frame's publication are one step."""

import asyncio
import json
import uuid

import pytest
from channels.layers import channel_layers, get_channel_layer

from conversations import events
from tests.live import redis_available, redis_url

pytestmark = [pytest.mark.redis]


@pytest.fixture
def redis_layer(settings):
    if not redis_available():
        pytest.skip("Redis is not reachable (set REDIS_URL)")
    settings.REDIS_URL = redis_url()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [redis_url()]}}
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


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
        received = [json.loads((await layer.receive(channel))["text"]) for _ in range(600)]
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

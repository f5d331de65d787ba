"""Fixtures of the conversations tests."""

import pytest
from channels.layers import channel_layers

from tests.live import redis_available, redis_url


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

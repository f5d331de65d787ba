"""Events to every socket watching a conversation, numbered by `seq`.

`seq` grows by one with each change in a conversation, the same for every socket:
a Redis counter when REDIS_URL is set (several processes), else a per-process one.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict

from channels.layers import get_channel_layer
from django.conf import settings

SEQ_KEY = "chat:seq:{}"
_local_seq: defaultdict[str, int] = defaultdict(int)
# A Redis client belongs to the event loop that made it.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def group_name(conversation_id) -> str:
    return f"conversation.{conversation_id}"


def _redis():
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        import redis.asyncio as redis

        client = _redis_clients[loop] = redis.Redis.from_url(settings.REDIS_URL)
    return client


async def next_seq(conversation_id) -> int:
    if settings.REDIS_URL:
        return int(await _redis().incr(SEQ_KEY.format(conversation_id)))
    _local_seq[str(conversation_id)] += 1
    return _local_seq[str(conversation_id)]


async def current_seq(conversation_id) -> int:
    if settings.REDIS_URL:
        return int(await _redis().get(SEQ_KEY.format(conversation_id)) or 0)
    return _local_seq[str(conversation_id)]


async def publish(conversation_id, frame: dict) -> None:
    """Send a frame to the conversation's sockets; call only after the change is committed."""
    frame["seq"] = await next_seq(conversation_id)
    await get_channel_layer().group_send(group_name(conversation_id), {"type": "conversation.event", "frame": frame})


async def forget(conversation_id) -> None:
    if settings.REDIS_URL:
        await _redis().delete(SEQ_KEY.format(conversation_id))
    _local_seq.pop(str(conversation_id), None)

"""Events to every socket watching a conversation, numbered by `seq`.

`seq` grows by one with each change in a conversation, the same for every socket:
a Redis counter when REDIS_URL is set (several processes), else a per-process one.

The text of replies being streamed is kept beside the counter and updated in the same
atomic step as each token's `seq`, so that a snapshot can include the reply written so
far: the client applies the tokens with a higher `seq`, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict

from channels.layers import get_channel_layer
from django.conf import settings

SEQ_KEY = "chat:seq:{}"
PARTIALS_KEY = "chat:partials:{}"  # set of "<message_id>|<run_id>"
PARTIAL_KEY = "chat:partial:{}:"  # + message_id: the text so far
PARTIAL_TTL_SECONDS = 86400

# seq and the partial text move together.
APPEND_TOKEN = """
local seq = redis.call('INCR', KEYS[1])
redis.call('APPEND', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return seq
"""
READ_STATE = """
local out = {redis.call('GET', KEYS[1]) or '0'}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local message_id = string.sub(member, 1, string.find(member, '|', 1, true) - 1)
  table.insert(out, member)
  table.insert(out, redis.call('GET', ARGV[1] .. message_id) or '')
end
return out
"""

_local_seq: defaultdict[str, int] = defaultdict(int)
_local_partials: defaultdict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
# A Redis client belongs to the event loop that made it.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def group_name(conversation_id) -> str:
    return f"conversation.{conversation_id}"


def redis_client():
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        import redis.asyncio as redis

        client = _redis_clients[loop] = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return client


async def next_seq(conversation_id) -> int:
    if settings.REDIS_URL:
        return int(await redis_client().incr(SEQ_KEY.format(conversation_id)))
    _local_seq[str(conversation_id)] += 1
    return _local_seq[str(conversation_id)]


async def _send(conversation_id, frame: dict) -> None:
    await get_channel_layer().group_send(group_name(conversation_id), {"type": "conversation.event", "frame": frame})


async def publish(conversation_id, frame: dict) -> None:
    """Send a frame to the conversation's sockets; call only after the change is committed."""
    frame["seq"] = await next_seq(conversation_id)
    await _send(conversation_id, frame)


async def publish_resync(conversation_id) -> None:
    """The shown line changed as a whole (a fork or a switch): every socket is sent a new
    snapshot. Call only after the change is committed."""
    await next_seq(conversation_id)
    await get_channel_layer().group_send(group_name(conversation_id), {"type": "conversation.resync"})


async def publish_token(conversation_id, *, run_id: str, message_id: str, delta: str) -> None:
    frame = {"type": "token", "run_id": run_id, "message_id": message_id, "delta": delta}
    conversation_id = str(conversation_id)
    if settings.REDIS_URL:
        frame["seq"] = int(
            await redis_client().eval(
                APPEND_TOKEN, 3,
                SEQ_KEY.format(conversation_id), PARTIAL_KEY.format(conversation_id) + message_id,
                PARTIALS_KEY.format(conversation_id),
                delta, f"{message_id}|{run_id}", PARTIAL_TTL_SECONDS,
            )
        )
    else:
        _local_seq[conversation_id] += 1
        frame["seq"] = _local_seq[conversation_id]
        previous = _local_partials[conversation_id].get(message_id, (run_id, ""))[1]
        _local_partials[conversation_id][message_id] = (run_id, previous + delta)
    await _send(conversation_id, frame)


async def forget_partial(conversation_id, *, run_id: str, message_id: str) -> None:
    """The reply is stored (or abandoned): snapshots stop carrying its partial text."""
    conversation_id = str(conversation_id)
    if settings.REDIS_URL:
        client = redis_client()
        await client.srem(PARTIALS_KEY.format(conversation_id), f"{message_id}|{run_id}")
        await client.delete(PARTIAL_KEY.format(conversation_id) + message_id)
    else:
        _local_partials[conversation_id].pop(message_id, None)


async def stream_state(conversation_id) -> tuple[int, list[dict]]:
    """The current seq and the replies being written, read in one atomic step."""
    conversation_id = str(conversation_id)
    if settings.REDIS_URL:
        raw = await redis_client().eval(
            READ_STATE, 2, SEQ_KEY.format(conversation_id), PARTIALS_KEY.format(conversation_id),
            PARTIAL_KEY.format(conversation_id),
        )
        seq, rest = int(raw[0]), raw[1:]
        partials = [
            (member.split("|", 1), content) for member, content in zip(rest[::2], rest[1::2])
        ]
        return seq, [{"message_id": m, "run_id": r, "content": c} for (m, r), c in partials]
    return _local_seq[conversation_id], [
        {"message_id": m, "run_id": r, "content": c} for m, (r, c) in _local_partials[conversation_id].items()
    ]


async def forget(conversation_id) -> None:
    if settings.REDIS_URL:
        await redis_client().delete(SEQ_KEY.format(conversation_id), PARTIALS_KEY.format(conversation_id))
    _local_seq.pop(str(conversation_id), None)
    _local_partials.pop(str(conversation_id), None)

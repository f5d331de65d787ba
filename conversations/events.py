"""Events to every socket watching a conversation, numbered by `seq`.

`seq` grows by one with each change in a conversation, the same for every socket:
a Redis counter when REDIS_URL is set (several processes), else a per-process one. On
Redis a frame's seq and its publication are one step (redis_group_publish).

The text of replies being streamed is kept beside the counter and updated in the same
atomic step as each token's `seq`, so that a snapshot can include the reply written so
far: the client applies the tokens with a higher `seq`, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import defaultdict

from channels.layers import get_channel_layer
from django.conf import settings

from . import redis_group_publish

SEQ_KEY = "chat:seq:{}"
PARTIALS_KEY = "chat:partials:{}"  # set of "<message_id>|<run_id>"
PARTIAL_KEY = "chat:partial:{}:"  # + message_id: the text so far
PARTIAL_TTL_SECONDS = 86400
# A reply's reasoning so far is kept as a partial text of its own, under this suffix.
REASONING_SUFFIX = ":reasoning"

READ_STATE = """
local out = {redis.call('GET', KEYS[1]) or '0'}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local message_id = string.sub(member, 1, string.find(member, '|', 1, true) - 1)
  table.insert(out, member)
  table.insert(out, redis.call('GET', ARGV[1] .. message_id) or '')
end
return out
"""
# The conversation's seq, its replies being written and their texts, in one step.
FORGET = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', ARGV[1] .. string.sub(member, 1, string.find(member, '|', 1, true) - 1))
end
redis.call('DEL', KEYS[1], KEYS[2])
"""

_local_seq: defaultdict[str, int] = defaultdict(int)
_local_partials: defaultdict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
# A Redis client, and its scripts, belong to the event loop that made them.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def group_name(conversation_id) -> str:
    return f"conversation.{conversation_id}"


def redis_client():
    return _redis_for_loop()[0]


def script(text: str):
    """The Lua script, run by its SHA1 (EVALSHA) on this loop's client."""
    client, scripts = _redis_for_loop()
    if text not in scripts:
        scripts[text] = client.register_script(text)
    return scripts[text]


def _redis_for_loop():
    loop = asyncio.get_running_loop()
    found = _redis_clients.get(loop)
    if found is None:
        import redis.asyncio as redis

        found = _redis_clients[loop] = (redis.Redis.from_url(settings.REDIS_URL, decode_responses=True), {})
    return found


async def next_seq(conversation_id) -> int:
    if settings.REDIS_URL:
        return int(await redis_client().incr(SEQ_KEY.format(conversation_id)))
    _local_seq[str(conversation_id)] += 1
    return _local_seq[str(conversation_id)]


async def _publish(conversation_id, frames: list[dict], redis_script: str, keys: list, args: list) -> int:
    """Number the frames and send them to the conversation's sockets, each encoded as JSON
    once, in one message. Returns the last one's seq."""
    group = group_name(conversation_id)
    layer = get_channel_layer()
    if settings.REDIS_URL:
        texts = [json.dumps(frame) for frame in frames]
        channel = redis_group_publish.group_channel(layer, group)
        return int(await script(redis_script)(keys=[SEQ_KEY.format(conversation_id), *keys],
                                              args=[channel, len(texts), *texts, *args]))
    for frame in frames:
        frame["seq"] = await next_seq(conversation_id)
    await layer.group_send(group, {"type": "conversation.event", "texts": [json.dumps(frame) for frame in frames]})
    return frames[-1]["seq"]


async def publish(conversation_id, *frames: dict) -> int:
    """Send frames to the conversation's sockets, in this order and in one step; call only
    after the changes are committed. Returns the last one's seq."""
    return await _publish(conversation_id, list(frames), redis_group_publish.PUBLISH, [], [])


def _partial_keys(conversation_id: str, message_id: str) -> list[str]:
    return [PARTIAL_KEY.format(conversation_id) + message_id, PARTIALS_KEY.format(conversation_id)]


async def publish_resync(conversation_id) -> None:
    """The shown line changed as a whole (a fork or a switch): every socket is sent a new
    snapshot. Call only after the change is committed."""
    await next_seq(conversation_id)
    await get_channel_layer().group_send(group_name(conversation_id), {"type": "conversation.resync"})


def reasoning_partial(message_id: str) -> str:
    """The partial text that holds a reply's reasoning so far, beside its answer's."""
    return message_id + REASONING_SUFFIX


async def publish_token(conversation_id, *, run_id: str, message_id: str, delta: str, reasoning: bool = False) -> int:
    """A piece of a reply being written: of its answer, or (`reasoning`) of its thinking."""
    conversation_id = str(conversation_id)
    frame = {"type": "token", "run_id": run_id, "message_id": message_id, "delta": delta}
    partial_id = message_id
    if reasoning:
        frame["part"] = "reasoning"
        partial_id = reasoning_partial(message_id)
    if not settings.REDIS_URL:
        previous = _local_partials[conversation_id].get(partial_id, (run_id, ""))[1]
        _local_partials[conversation_id][partial_id] = (run_id, previous + delta)
    return await _publish(
        conversation_id, [frame], redis_group_publish.APPEND_TOKEN, _partial_keys(conversation_id, partial_id),
        [delta, f"{partial_id}|{run_id}", PARTIAL_TTL_SECONDS],
    )


async def publish_stored(conversation_id, *frames: dict, run_id: str, message_id: str) -> int:
    """Send the frame of a message of a run just stored (and the frames after it);
    snapshots stop carrying its partial text, in the same step."""
    conversation_id = str(conversation_id)
    if not settings.REDIS_URL:
        _local_partials[conversation_id].pop(message_id, None)
    return await _publish(
        conversation_id, list(frames), redis_group_publish.FORGET_PARTIAL, _partial_keys(conversation_id, message_id),
        [f"{message_id}|{run_id}"],
    )


async def forget_partial(conversation_id, *, run_id: str, message_id: str) -> None:
    """The reply is abandoned: snapshots stop carrying its partial text."""
    conversation_id = str(conversation_id)
    if settings.REDIS_URL:
        partial_key, partials_key = _partial_keys(conversation_id, message_id)
        async with redis_client().pipeline(transaction=False) as pipe:  # one round trip
            pipe.srem(partials_key, f"{message_id}|{run_id}")
            pipe.delete(partial_key)
            await pipe.execute()
    else:
        _local_partials[conversation_id].pop(message_id, None)


async def stream_state(conversation_id) -> tuple[int, list[dict]]:
    """The current seq and the replies being written, read in one atomic step."""
    conversation_id = str(conversation_id)
    if settings.REDIS_URL:
        raw = await script(READ_STATE)(
            keys=[SEQ_KEY.format(conversation_id), PARTIALS_KEY.format(conversation_id)],
            args=[PARTIAL_KEY.format(conversation_id)],
        )
        seq, rest = int(raw[0]), raw[1:]
        partials = [
            (member.split("|", 1), content) for member, content in zip(rest[::2], rest[1::2])
        ]
        return seq, [{"message_id": m, "run_id": r, "content": c} for (m, r), c in partials]
    return _local_seq[conversation_id], [
        {"message_id": m, "run_id": r, "content": c} for m, (r, c) in _local_partials[conversation_id].items()
    ]


async def publish_deleted(conversation_id) -> None:
    """The conversation was deleted: its sockets, on every process, are closed (not
    numbered: nothing follows); its seq and replies being written are forgotten. Call
    only after the delete is committed."""
    await get_channel_layer().group_send(group_name(conversation_id), {"type": "conversation.deleted"})
    await forget(conversation_id)


async def forget(conversation_id) -> None:
    if settings.REDIS_URL:
        await script(FORGET)(
            keys=[SEQ_KEY.format(conversation_id), PARTIALS_KEY.format(conversation_id)],
            args=[PARTIAL_KEY.format(conversation_id)],
        )
    _local_seq.pop(str(conversation_id), None)
    _local_partials.pop(str(conversation_id), None)

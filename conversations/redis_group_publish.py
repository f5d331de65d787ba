"""Frames numbered and published to a conversation's channels_redis group in one step on
Redis: a Lua script takes each frame's next `seq` and PUBLISHes the frames as one message.

Through channels' public API, a seq taken in one round trip (INCR) and a `group_send` in
another, the frames of concurrent publishers could reach a socket out of seq order, and a
token's text so far could be stored apart from its seq; and each event costs more
(bench/event_publish.py prints both, in one run).

The script writes what `RedisPubSubChannelLayer.group_send` would: the message
msgpack-encoded (cmsgpack, which Redis's Lua has), published on the group's Redis
channel. It relies on channels_redis's pub/sub layer: its private
`_get_group_channel_name`, its serializer being plain msgpack (no
`symmetric_encryption_keys`), and one Redis host, REDIS_URL (no sharding).
tests/conversations/test_redis_group_publish.py pins the version it was written for.
"""

from __future__ import annotations

# ARGV[1] is the group's Redis channel, ARGV[2] the number of frames n, ARGV[3 .. 2+n] the
# frames' JSON without seq; KEYS[1] the conversation's seq. The message's texts are ready
# for the websocket. Returns the last frame's seq.
PUBLISH = """
local seq, texts = 0, {}
for i = 1, tonumber(ARGV[2]) do
  seq = redis.call('INCR', KEYS[1])
  texts[i] = '{"seq":' .. string.format('%d', seq) .. ',' .. string.sub(ARGV[2 + i], 2)
end
redis.call('PUBLISH', ARGV[1], cmsgpack.pack({type = 'conversation.event', texts = texts}))
return seq
"""
# A token (one frame) also appends to the reply's text so far (ARGV[4]), in the same step.
APPEND_TOKEN = """
redis.call('APPEND', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[6])
""" + PUBLISH
# A stored message ends its partial text (ARGV[3 + n] is its member), in the same step.
FORGET_PARTIAL = """
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3 + tonumber(ARGV[2])])
""" + PUBLISH


def group_channel(layer, group: str) -> str:
    """The Redis channel the layer publishes the group's messages on."""
    return layer._get_group_channel_name(group)

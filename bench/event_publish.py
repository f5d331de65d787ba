"""Cost of publishing one conversation event on Redis, in this process.

Ours (`conversations.events.publish`): one EVALSHA that takes the next `seq` and
PUBLISHes the frame, JSON-encoded once, in channels_redis's message format. Baseline, same
run: what it replaced — an INCR for `seq`, then channels_redis's `group_send` (msgpack in
Python, a PUBLISH behind the layer's per-connection lock), and one `json.dumps` per
receiving socket (here: one).

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/event_publish.py --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, ratio, table  # noqa: E402
from tests.live import redis_available, redis_url  # noqa: E402

FRAME = {"type": "token", "run_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()), "delta": " word"}


async def measure(publish, events: int) -> tuple[float, float]:
    """CPU and wall microseconds per event, after a warm-up."""
    for _ in range(200):
        await publish()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(events):
        await publish()
    return (time.process_time() - cpu) / events * 1e6, (time.perf_counter() - wall) / events * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    if not redis_available():
        sys.exit("Redis is needed (set REDIS_URL)")
    os.environ["REDIS_URL"] = redis_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from channels.layers import get_channel_layer

    from conversations import events

    header("event publish", {"events": args.events, "frame": json.dumps(FRAME)})
    conversation_id = str(uuid.uuid4())
    layer = get_channel_layer()

    async def ours():
        await events.publish(conversation_id, dict(FRAME))

    async def before():
        frame = {**FRAME, "seq": await events.next_seq(conversation_id)}
        await layer.group_send(events.group_name(conversation_id), {"type": "conversation.event", "frame": frame})
        json.dumps(frame)  # the receiving socket encoded it

    try:
        ours_cpu, ours_wall = await measure(ours, args.events)
        base_cpu, base_wall = await measure(before, args.events)
    finally:
        await events.forget(conversation_id)
    table(["per event", "ours", "INCR + group_send", "ours / baseline"], [
        ["CPU µs (this process)", f"{ours_cpu:.0f}", f"{base_cpu:.0f}", ratio(ours_cpu, base_cpu)],
        ["wall µs", f"{ours_wall:.0f}", f"{base_wall:.0f}", ratio(ours_wall, base_wall)],
        ["Redis round trips", "1", "2", "0.50×"],
    ])


if __name__ == "__main__":
    asyncio.run(main())

"""Cost of publishing one conversation event on Redis, in this process.

Ours (`conversations.events.publish`, by `conversations.redis_group_publish`): one EVALSHA
that takes the next `seq` and PUBLISHes the frame, JSON-encoded once, in channels_redis's
message format. Baseline, same run, alternating rounds: channels' public API, as the
events take without Redis — an INCR for `seq`, then the layer's `group_send` of the
frame's JSON (msgpack in Python, a PUBLISH behind the layer's per-connection lock).
Figures are medians of the rounds, with the lowest and highest.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/event_publish.py --events 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, median_and_spread, ratio, table  # noqa: E402
from tests.live import redis_available, redis_url  # noqa: E402

FRAME = {"type": "token", "run_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()), "delta": " word"}


async def measure(publish, events: int) -> tuple[float, float]:
    """CPU and wall microseconds per event."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(events):
        await publish()
    return (time.process_time() - cpu) / events * 1e6, (time.perf_counter() - wall) / events * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not redis_available():
        sys.exit("Redis is needed (set REDIS_URL)")
    os.environ["REDIS_URL"] = redis_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from channels.layers import get_channel_layer

    from conversations import events

    header("event publish", {"events": args.events, "rounds": args.rounds, "frame": json.dumps(FRAME)})
    conversation_id = str(uuid.uuid4())
    layer = get_channel_layer()

    async def ours():
        await events.publish(conversation_id, dict(FRAME))

    async def public_api():
        frame = {**FRAME, "seq": await events.next_seq(conversation_id)}
        await layer.group_send(events.group_name(conversation_id),
                               {"type": "conversation.event", "texts": [json.dumps(frame)]})

    mine, theirs = [], []
    try:
        for _ in range(200):  # warm-up: connections, the script loaded
            await ours()
            await public_api()
        for _ in range(args.rounds):
            mine.append(await measure(ours, args.events))
            theirs.append(await measure(public_api, args.events))
    finally:
        await events.forget(conversation_id)
    rows = []
    for label, index in [("CPU µs (this process)", 0), ("wall µs", 1)]:
        ours_figures, base_figures = [m[index] for m in mine], [t[index] for t in theirs]
        rows.append([label, median_and_spread(ours_figures), median_and_spread(base_figures),
                     ratio(statistics.median(ours_figures), statistics.median(base_figures))])
    rows.append(["Redis round trips", "1", "2", "0.50×"])
    table(["per event", "ours: one script", "INCR + group_send", "ours / baseline"], rows)


if __name__ == "__main__":
    asyncio.run(main())

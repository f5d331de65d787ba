"""How fast a run killed with SIGKILL resumes on another process, by lease length.

Two daphne processes share PostgreSQL and Redis. A `slow 400` reply starts on process A;
A is killed with SIGKILL after its tenth word; we time until process B streams the first
word of the resumed reply to a socket connected to B. The bound is the lease's remaining
time plus one recovery interval. A shorter lease resumes sooner but renews more often:
each process issues one UPDATE per RUN_RECOVERY_INTERVAL_SECONDS whatever it runs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/recovery.py
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.live import Server, Session, Templates, receive, receive_until, send  # noqa: E402

TRIALS = 3


async def one_trial(database, workdir: Path, lease: float, interval: float) -> float:
    env = {"RUN_LEASE_SECONDS": str(lease), "RUN_RECOVERY_INTERVAL_SECONDS": str(interval), "OFFLINE_MODEL_DELAY_MS": "5"}
    owner = Server(database, workdir / "a.log", extra_env=env).start()
    survivor = Server(database, workdir / "b.log", extra_env=env).start()
    try:
        alice_a, alice_b = Session(owner, "alice"), Session(survivor, "alice")
        conversation = alice_a.create_conversation()
        async with alice_b.websocket(conversation["id"]) as watcher, alice_a.websocket(conversation["id"]) as ws:
            await receive(watcher)
            await receive(ws)
            await send(ws, {"type": "message.send", "content": "slow 400"})
            await receive_until(watcher, lambda f: f["type"] == "token" and "tick10" in f["delta"])
            owner.kill()
            killed = time.monotonic()
            await receive_until(watcher, lambda f: f["type"] == "token" and f["delta"] == "tick1", timeout=60)
            return time.monotonic() - killed
    finally:
        owner.stop()
        survivor.stop()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    templates = Templates(workdir)
    try:
        print(f"{'lease s':>8} {'sweep s':>8} {'resume after SIGKILL, s (min / median / max)':>46} {'renewals/s per process':>24}")
        for lease, interval in [(5, 1.5), (2, 0.5), (10, 3)]:
            times = [await one_trial(templates.new_database("postgres", redis=True), workdir, lease, interval) for _ in range(TRIALS)]
            print(f"{lease:>8} {interval:>8} {min(times):>22.2f} / {statistics.median(times):.2f} / {max(times):.2f} {1 / interval:>24.2f}")
        print("bar (issue 4): resume on a surviving process within 10 s; "
              "Aegra 0.11 measured: never (default mode), ~35 s after restart (Redis mode)")
    finally:
        templates.drop_all()


if __name__ == "__main__":
    asyncio.run(main())

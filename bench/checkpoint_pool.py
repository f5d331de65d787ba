"""What the checkpointer's pool settings (agent/postgres_pool.py) pay, per checkpoint
written: a turn's step as the saver writes it (a checkpoint, then its task's writes),
from many conversations at once.

Ours: a connection lent without a query unless the server disturbed it. Against, in the
same run and alternating rounds: psycopg_pool's stock check (a query before each
connection is lent), and ours with commits that do not wait for the disk (PostgreSQL's
`synchronous_commit = off`, which the app does not use unless it pays). Figures are
medians of the rounds, with the lowest and highest.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/checkpoint_pool.py --steps 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import header, median_and_spread, ratio, table  # noqa: E402
from tests.live import admin_sql, postgres_admin_url, postgres_available, url_with_database  # noqa: E402


def variants(postgres_pool):
    """Each variant's pool options, as (label, check, configure)."""
    from psycopg_pool import AsyncConnectionPool

    async def commit_without_waiting_for_disk(conn) -> None:
        await conn.execute("SET synchronous_commit = off")

    return [
        ("ours", postgres_pool.check_if_disturbed, None),
        ("stock check", AsyncConnectionPool.check_connection, None),
        ("commits without waiting for the disk", postgres_pool.check_if_disturbed, commit_without_waiting_for_disk),
    ]


async def measure(saver, steps: int, conversations: int) -> tuple[float, float]:
    """CPU and wall microseconds per step, `conversations` writing at once."""
    from langgraph.checkpoint.base import empty_checkpoint

    async def conversation(n: int):
        config = {"configurable": {"thread_id": f"bench-{uuid.uuid4()}", "checkpoint_ns": ""}}
        for step in range(steps // conversations):
            config = await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": step}, {})
            await saver.aput_writes(config, [("messages", [f"step {step}"])], f"task-{step}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(conversation(n) for n in range(conversations)))
    return (time.process_time() - cpu) / steps * 1e6, (time.perf_counter() - wall) / steps * 1e6


async def run(url: str, args) -> dict[str, list[tuple[float, float]]]:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from agent import postgres_pool
    from agent.pooled_postgres_saver import PooledAsyncPostgresSaver

    pools = {}
    for label, check, configure in variants(postgres_pool):
        pools[label] = AsyncConnectionPool(
            url, min_size=1, max_size=args.pool_size, check=check, configure=configure, open=False,
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        )
        await pools[label].open(wait=True, timeout=30)
    figures = {label: [] for label in pools}
    try:
        for label, pool in pools.items():  # warm-up: every connection opened
            await measure(PooledAsyncPostgresSaver(pool), args.conversations * 4, args.conversations)
        for _ in range(args.rounds):
            for label, pool in pools.items():
                figures[label].append(await measure(PooledAsyncPostgresSaver(pool), args.steps, args.conversations))
    finally:
        for pool in pools.values():
            await pool.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps written per round and variant")
    parser.add_argument("--conversations", type=int, default=50, help="conversations writing at once")
    parser.add_argument("--pool-size", type=int, default=10, help="connections (CHECKPOINT_POOL_SIZE's default)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not postgres_available():
        sys.exit("PostgreSQL is needed (set DATABASE_URL)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from agent.checkpointer import create_checkpoint_tables

    name = f"bench_pool_{os.getpid()}"
    admin_sql(f'CREATE DATABASE "{name}"')
    url = url_with_database(postgres_admin_url(), name)
    try:
        import dj_database_url

        create_checkpoint_tables(dj_database_url.parse(url))
        header("checkpoint pool", vars(args))
        figures = asyncio.run(run(url, args))
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ours = figures["ours"]
    rows = []
    for label in figures:
        if label == "ours":
            continue
        for what, index in [("CPU µs (this process)", 0), ("wall µs", 1)]:
            rows.append([label, what, median_and_spread([f[index] for f in ours]),
                         median_and_spread([f[index] for f in figures[label]]),
                         ratio(statistics.median(f[index] for f in ours), statistics.median(f[index] for f in figures[label]))])
    table(["baseline", "per step", "ours", "baseline", "ours / baseline"], rows)


if __name__ == "__main__":
    main()

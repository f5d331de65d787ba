"""agent.pooled_postgres_saver: without the stock saver's lock on a pool, with it on a
single connection; written for one version of langgraph-checkpoint-postgres."""

import asyncio
import importlib.metadata

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agent.checkpointer import database_settings, is_postgres, postgres_conninfo
from agent.pooled_postgres_saver import PooledAsyncPostgresSaver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CONNECTION = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0}


def test_written_for_this_version_of_the_postgres_saver():
    assert importlib.metadata.version("langgraph-checkpoint-postgres") == "3.2.0", (
        "agent/pooled_postgres_saver.py replaces AsyncPostgresSaver.lock: check that _cursor still enters "
        "self.lock around each query and takes each query's connection from the pool, then update this version"
    )


def require_postgresql():
    if not is_postgres(database_settings()):
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")


async def write_at_once(saver, threads: int) -> None:
    """One checkpoint on each of `threads` threads, all at once; each read back."""
    async def write(n: int):
        config = {"configurable": {"thread_id": f"saver-test-{n}", "checkpoint_ns": ""}}
        return await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})

    written = await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(threads))), timeout=30)
    for config in written:
        assert await saver.aget_tuple(config) is not None


async def test_on_a_single_connection_the_saver_keeps_its_lock_and_its_queries_take_turns():
    require_postgresql()
    async with await psycopg.AsyncConnection.connect(postgres_conninfo(database_settings()), **CONNECTION) as conn:
        saver = PooledAsyncPostgresSaver(conn)
        assert isinstance(saver.lock, asyncio.Lock)
        await write_at_once(saver, 10)


async def test_on_a_pool_the_saver_has_no_lock_and_its_queries_run_at_once():
    require_postgresql()
    async with AsyncConnectionPool(postgres_conninfo(database_settings()), min_size=1, max_size=4, kwargs=CONNECTION,
                                   open=False) as pool:
        saver = PooledAsyncPostgresSaver(pool)
        assert not isinstance(saver.lock, asyncio.Lock)
        await write_at_once(saver, 10)

"""LangGraph's AsyncPostgresSaver whose queries on a connection pool run concurrently.

The stock saver holds one asyncio.Lock around every query (`_cursor`): it guards a single
shared connection, which one coroutine at a time may use. With a pool each query takes a
connection of its own, so the lock would only make a process's runs wait for each
other's checkpoint reads and writes; it is replaced by no lock. Handed a single
connection, the saver keeps its lock.

Relies on `AsyncPostgresSaver._cursor` entering `self.lock` and taking each query's
connection from the pool (tests/agent/test_pooled_postgres_saver.py pins the version).
"""

from __future__ import annotations

import contextlib

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool


class PooledAsyncPostgresSaver(AsyncPostgresSaver):
    def __init__(self, conn, *args, **kwargs):
        super().__init__(conn, *args, **kwargs)
        if isinstance(conn, AsyncConnectionPool):
            self.lock = contextlib.nullcontext()

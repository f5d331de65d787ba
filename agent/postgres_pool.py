"""The checkpointer's pool of PostgreSQL connections: a connection is lent without a
round trip unless the server disturbed it. Written for psycopg_pool's `check` hook
(tests/agent/test_postgres_pool.py pins the version); bench/checkpoint_pool.py measures
what it pays."""

from __future__ import annotations

import select

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


def checkpoint_pool(conninfo: str, *, max_size: int) -> AsyncConnectionPool:
    """The pool, not yet open."""
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        check=check_if_disturbed,
        open=False,
    )


async def check_if_disturbed(conn) -> None:
    """The pool's check before lending a connection, without a round trip when it can.

    An idle connection has nothing to read unless the server wrote to it: a server that
    shuts down or ends the session (a restart, pg_terminate_backend) sends an error and
    closes the socket. Only then is the connection checked with the stock query, which
    fails and makes the pool open a new one; a quiet connection is lent as it is.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if conn.closed or poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)

"""The checkpointer's pool of PostgreSQL connections, configured for a turn's writes:
a connection is lent without a round trip unless the server disturbed it, and its
commits do not wait for the disk. Written for psycopg_pool's `check` and `configure`
hooks (tests/agent/test_postgres_pool.py pins the version); bench/checkpoint_pool.py
measures what each pays."""

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
        configure=commit_without_waiting_for_disk,
        open=False,
    )


async def commit_without_waiting_for_disk(conn) -> None:
    """Checkpoint writes commit without waiting for PostgreSQL to flush them to disk: a
    turn's writes do not wait for a flush each.

    Nothing the app shows is lost by it. PostgreSQL flushes its log in order, so a
    commit that waits for the disk makes every commit before it durable too. Whatever
    the app shows or acts on commits through Django, which waits: a stored message, a
    run's end, an approval, a tool's ledger row. Only a crash of PostgreSQL itself can
    lose checkpoints, those a run wrote after its last such commit, and the run then
    resumes from an earlier one, as after a crash of this server. A tool is not run
    twice: its ledger row commits before it runs, after the checkpoint that called it.
    """
    await conn.execute("SET synchronous_commit = off")


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

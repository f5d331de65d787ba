"""The checkpointer: LangGraph's saver in the same database as Django.

PostgreSQL: AsyncPostgresSaver on an AsyncConnectionPool, its queries concurrent
(pooled_postgres_saver). SQLite: AsyncSqliteSaver on the same file. Tables are created
by `manage.py migrate` (agent/migrations), never at the first request. A saver belongs
to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import select
import sqlite3
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiosqlite
from django.conf import settings
from django.db import connections
from langgraph.checkpoint.base import BaseCheckpointSaver, get_checkpoint_metadata
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from .context import RUN_METADATA_KEY
from .pooled_postgres_saver import PooledAsyncPostgresSaver

HEALTH_THREAD = {"configurable": {"thread_id": "healthz", "checkpoint_ns": ""}}


def is_postgres(settings_dict: dict[str, Any]) -> bool:
    return "postgresql" in settings_dict["ENGINE"]


def postgres_conninfo(settings_dict: dict[str, Any]) -> str:
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": str(settings_dict["PORT"]) if settings_dict.get("PORT") else None,
    }
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def database_settings() -> dict[str, Any]:
    # connections[...].settings_dict follows pytest-django's switch to the test database.
    return connections["default"].settings_dict


@dataclass
class Checkpointer:
    saver: BaseCheckpointSaver
    close: Callable[[], Awaitable[None]]

    async def check(self) -> None:
        """Raise if the checkpoint tables cannot be read."""
        await self.saver.aget_tuple(HEALTH_THREAD)


async def open_checkpointer() -> Checkpointer:
    db = database_settings()
    if is_postgres(db):
        return await _open_postgres(db)
    return await _open_sqlite(db)


# Threads whose checkpoints written since their last count a saver keeps track of.
COUNTED_THREADS_MAX = 10_000


class RemembersLastCheckpoint:
    """A saver that remembers, per thread, the last checkpoint it wrote and the run that
    wrote it: the executor notes a run's last checkpoint when the run ends without
    reading it back. Runs of a conversation go one at a time, so while a run is active
    no other process writes to its thread.

    It also counts the checkpoints it wrote per thread since the executor last had the
    thread's checkpoints counted (`count_due`), so that a run's end counts them (to trim
    them) only every few runs rather than after each one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_written: dict[str, tuple[str | None, str]] = {}
        # A thread not in it has not been counted since this process started (or forgot it).
        self._written_since_count: dict[str, int] = {}

    async def aput(self, config, checkpoint, metadata, new_versions):
        written = await super().aput(config, checkpoint, metadata, new_versions)
        if not config["configurable"].get("checkpoint_ns"):  # the graph's own, not a subgraph's
            thread_id = config["configurable"]["thread_id"]
            if thread_id in self._written_since_count:
                self._written_since_count[thread_id] += 1
            self._last_written[thread_id] = (
                # As the saver stores it: the run's key comes from the config's metadata.
                get_checkpoint_metadata(config, metadata).get(RUN_METADATA_KEY),
                written["configurable"]["checkpoint_id"],
            )
        return written

    def count_due(self, thread_id: str, every: int) -> bool:
        """Whether to count the thread's checkpoints now: `every` were written here since
        they were last counted, or this process has not counted them. True starts the
        tally over. Bounded: past COUNTED_THREADS_MAX threads it forgets them all, and
        each is counted again at its next run's end."""
        written = self._written_since_count.get(thread_id)
        if written is not None and written < every:
            return False
        if len(self._written_since_count) >= COUNTED_THREADS_MAX:
            self._written_since_count.clear()
        self._written_since_count[thread_id] = 0
        return True

    def forget_last_written(self, thread_id: str) -> None:
        """At an attempt's start: only what it writes will count."""
        self._last_written.pop(thread_id, None)

    def take_last_written(self, thread_id: str, run_id: str) -> str | None:
        """The id of the thread's last checkpoint if this run wrote it here; forgotten after."""
        writer, checkpoint_id = self._last_written.pop(thread_id, (None, ""))
        return checkpoint_id if writer == run_id else None


class RemembersLastCheckpointSqliteSaver(RemembersLastCheckpoint, AsyncSqliteSaver):
    """The stock saver writes, then commits, in two awaits on its one connection: a run
    stopped (its task cancelled) between them would leave that connection in a
    transaction holding SQLite's one write lock, and every other write of the app would
    wait for it (up to 30 s). Each write runs to its commit whatever happens to the run."""

    async def aput(self, config, checkpoint, metadata, new_versions):
        return await asyncio.shield(super().aput(config, checkpoint, metadata, new_versions))

    async def aput_writes(self, config, writes, task_id, task_path=""):
        return await asyncio.shield(super().aput_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id):
        return await asyncio.shield(super().adelete_thread(thread_id))


class RemembersLastCheckpointPostgresSaver(RemembersLastCheckpoint, PooledAsyncPostgresSaver):
    pass


async def _open_postgres(db: dict[str, Any]) -> Checkpointer:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        postgres_conninfo(db),
        min_size=1,
        max_size=settings.CHECKPOINT_POOL_SIZE,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        check=_check_if_disturbed,
        configure=_commit_without_waiting_for_disk,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return Checkpointer(saver=RemembersLastCheckpointPostgresSaver(pool), close=pool.close)


async def _commit_without_waiting_for_disk(conn) -> None:
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


async def _check_if_disturbed(conn) -> None:
    """The pool's check before lending a connection, without a round trip when it can.

    An idle connection has nothing to read unless the server wrote to it: a server that
    shuts down or ends the session (a restart, pg_terminate_backend) sends an error and
    closes the socket. Only then is the connection checked with a query, which fails and
    makes the pool open a new one; a quiet connection is lent as it is, and saves the
    round trip the stock check costs on every query.
    """
    from psycopg_pool import AsyncConnectionPool

    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    if conn.closed or poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


async def _open_sqlite(db: dict[str, Any]) -> Checkpointer:
    conn = await aiosqlite.connect(str(db["NAME"]), timeout=30)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA busy_timeout=30000")
    saver = RemembersLastCheckpointSqliteSaver(conn)
    # Tables exist (migrate made them); this only marks the saver ready.
    await saver.setup()
    return Checkpointer(saver=saver, close=conn.close)


def create_checkpoint_tables(settings_dict: dict[str, Any]) -> None:
    """Create or upgrade the saver's tables; called by a migration."""
    if is_postgres(settings_dict):
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver

        with psycopg.connect(
            postgres_conninfo(settings_dict), autocommit=True, prepare_threshold=None, row_factory=dict_row
        ) as conn:
            PostgresSaver(conn).setup()
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(str(settings_dict["NAME"]), timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            SqliteSaver(conn).setup()
        finally:
            conn.close()


def drop_checkpoint_tables(connection) -> None:
    tables = (
        ["checkpoint_writes", "checkpoint_blobs", "checkpoints", "checkpoint_migrations"]
        if is_postgres(connection.settings_dict)
        else ["writes", "checkpoints"]
    )
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")

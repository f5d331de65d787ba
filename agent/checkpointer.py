"""The checkpointer: LangGraph's saver in the same database as Django.

PostgreSQL: AsyncPostgresSaver on an AsyncConnectionPool (postgres_pool), its queries
concurrent (pooled_postgres_saver). SQLite: AsyncSqliteSaver on the same file. Tables are created
by `manage.py migrate` (agent/migrations), never at the first request. A saver belongs
to the event loop that opened it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiosqlite
from django.conf import settings
from django.db import connections
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from .last_checkpoint import RemembersLastCheckpoint
from .pooled_postgres_saver import PooledAsyncPostgresSaver
from .postgres_pool import checkpoint_pool

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
    pool = checkpoint_pool(postgres_conninfo(db), max_size=settings.CHECKPOINT_POOL_SIZE)
    await pool.open(wait=True, timeout=30)
    return Checkpointer(saver=RemembersLastCheckpointPostgresSaver(pool), close=pool.close)


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

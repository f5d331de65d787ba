"""The saver remembers the last checkpoint each run wrote, as the executor reads it when
the run ends instead of querying the thread's latest checkpoint."""

import asyncio
import sqlite3

import aiosqlite
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from agent.checkpointer import RemembersLastCheckpointSqliteSaver, _open_sqlite, create_checkpoint_tables
from agent.context import RUN_METADATA_KEY


async def test_the_last_checkpoint_a_run_wrote_is_taken_once():
    async with aiosqlite.connect(":memory:") as conn:
        saver = RemembersLastCheckpointSqliteSaver(conn)
        await saver.setup()

        async def put(thread: str, run_id: str, ns: str = "") -> str:
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}, "metadata": {RUN_METADATA_KEY: run_id}}
            written = await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
            return written["configurable"]["checkpoint_id"]

        await put("t1", "run-a")
        last = await put("t1", "run-a")
        await put("t1", "run-a", ns="subgraph:1")  # a subgraph's checkpoint is not the thread's
        await put("t2", "run-b")
        assert saver.take_last_written("t1", "run-a") == last
        assert saver.take_last_written("t1", "run-a") is None  # taken
        assert saver.take_last_written("t2", "run-x") is None  # another run wrote it
        await put("t2", "run-b")
        saver.forget_last_written("t2")
        assert saver.take_last_written("t2", "run-b") is None



async def test_a_run_stopped_during_a_checkpoint_write_leaves_the_database_unlocked(tmp_path, monkeypatch):
    """The run's task is cancelled (Stop) after the saver's INSERT, while it waits to commit."""
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": tmp_path / "db.sqlite3"}
    create_checkpoint_tables(database)
    checkpointer = await _open_sqlite(database)
    saver = checkpointer.saver
    inserted, commit = asyncio.Event(), saver.conn.commit

    async def commit_later():
        inserted.set()
        await asyncio.sleep(0.05)
        await commit()

    monkeypatch.setattr(saver.conn, "commit", commit_later)
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    run = asyncio.create_task(saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {}))
    await inserted.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    def write_elsewhere():  # another writer (Django), on its own thread as the ORM's are
        other = sqlite3.connect(tmp_path / "db.sqlite3", timeout=5)
        with other:
            other.execute("CREATE TABLE written (x)")  # "database is locked" if the lock stays held
        other.close()

    try:
        await asyncio.to_thread(write_elsewhere)
        assert await saver.aget_tuple(config) is not None  # the write itself landed
    finally:
        await checkpointer.close()

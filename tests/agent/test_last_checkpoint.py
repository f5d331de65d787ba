"""The saver remembers the last checkpoint each run wrote, as the executor reads it when
the run ends instead of querying the thread's latest checkpoint; it tells when a thread's
checkpoints are due to be counted (to trim them)."""

import asyncio
import importlib.metadata
import sqlite3

import aiosqlite
import dj_database_url
import pytest
from langgraph.checkpoint.base import empty_checkpoint

from agent import last_checkpoint
from agent.checkpointer import RemembersLastCheckpointSqliteSaver, _open_postgres, _open_sqlite, create_checkpoint_tables
from agent.context import RUN_METADATA_KEY
from tests.conftest import require_services


def test_written_for_this_version_of_langgraphs_savers():
    assert importlib.metadata.version("langgraph-checkpoint") == "4.3.2", (
        "agent/last_checkpoint.py relies on a saver's aput being called once per checkpoint with the run's "
        "config and returning the written checkpoint's config: check both, then update this version"
    )


@pytest.fixture
async def saver():
    async with aiosqlite.connect(":memory:") as conn:
        saver = RemembersLastCheckpointSqliteSaver(conn)
        await saver.setup()
        yield saver


async def put(saver, thread: str, run_id: str = "run-a", ns: str = "") -> str:
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}, "metadata": {RUN_METADATA_KEY: run_id}}
    written = await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
    return written["configurable"]["checkpoint_id"]


async def test_the_last_checkpoint_a_run_wrote_is_taken_once(saver):
    await put(saver, "t1", "run-a")
    last = await put(saver, "t1", "run-a")
    await put(saver, "t1", "run-a", ns="subgraph:1")  # a subgraph's checkpoint is not the thread's
    await put(saver, "t2", "run-b")
    assert saver.take_last_written("t1", "run-a") == last
    assert saver.take_last_written("t1", "run-a") is None  # taken
    assert saver.take_last_written("t2", "run-x") is None  # another run wrote it
    await put(saver, "t2", "run-b")
    saver.forget_last_written("t2")
    assert saver.take_last_written("t2", "run-b") is None


async def test_a_threads_checkpoints_are_due_to_be_counted_every_few_written_here(saver):
    assert saver.count_due("t1", every=3)  # never counted by this process
    assert not saver.count_due("t1", every=3)  # counted just now
    await put(saver, "t1")
    await put(saver, "t1", ns="subgraph:1")  # a subgraph's checkpoint is not the thread's
    await put(saver, "t2")  # another thread's
    await put(saver, "t1")
    assert not saver.count_due("t1", every=3)
    await put(saver, "t1")
    assert saver.count_due("t1", every=3)
    assert not saver.count_due("t1", every=3)  # the tally starts over


async def test_the_threads_it_tallies_are_bounded_and_those_forgotten_are_counted(saver, monkeypatch):
    monkeypatch.setattr(last_checkpoint, "COUNTED_THREADS_MAX", 2)
    assert saver.count_due("t1", every=3) and saver.count_due("t2", every=3)
    assert not saver.count_due("t1", every=3)
    assert saver.count_due("t3", every=3)  # a third thread: the tally starts over
    assert len(saver._written_since_count) == 1
    assert saver.count_due("t1", every=3)  # forgotten, so counted at once


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


@pytest.mark.postgres
async def test_on_postgresql_a_tasks_writes_are_stored(templates):
    """Both statements (upsert for the special channels, insert for the others) store them."""
    require_services("postgres")
    database = templates.new_database("postgres")
    checkpointer = await _open_postgres(dj_database_url.parse(database.url))
    saver = checkpointer.saver
    try:
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        written = await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})
        await saver.aput_writes(written, [("messages", ["hello"]), ("branch:to:model", None)], "task-1")
        await saver.aput_writes(written, [("__error__", "boom")], "task-2")
        await saver.aput_writes(written, [("__error__", "boom again")], "task-2")  # the special channel: replaced
        stored = await saver.aget_tuple(written)
        assert sorted(stored.pending_writes) == [
            ("task-1", "branch:to:model", None), ("task-1", "messages", ["hello"]), ("task-2", "__error__", "boom again"),
        ]
    finally:
        await checkpointer.close()

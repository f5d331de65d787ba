"""`prune_checkpoints` deletes every checkpoint row of a conversation that no longer
exists (what a process wrote after the delete, then died before removing it), and leaves
the threads of conversations that exist, and threads that are not a conversation's."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from langgraph.checkpoint.base import empty_checkpoint

from agent.checkpointer import open_checkpointer
from conversations import orm
from conversations.checkpoints import checkpoints_prune
from conversations.services.conversations import aconversation_delete, conversation_create
from tests.support.in_process import checkpoint_rows, clear_checkpoint_tables

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_threads_disconnect_after")]


@pytest.fixture
async def saver():
    checkpointer = await open_checkpointer()
    yield checkpointer.saver
    await checkpointer.close()


async def write_thread(saver, thread_id: str) -> None:
    """A checkpoint with a value (a blob, on PostgreSQL) and a pending write."""
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": ["hello"]}
    checkpoint["channel_versions"] = {"messages": "1"}
    written = await saver.aput(config, checkpoint, {"source": "loop", "step": 0}, {"messages": "1"})
    await saver.aput_writes(written, [("messages", "more")], task_id="task-1")


@orm.to_async
def two_conversations():
    user = User.objects.create_user("alice")
    return conversation_create(user=user), conversation_create(user=user)


@orm.to_async
def prune_command(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_checkpoints", *args, stdout=out)
    return out.getvalue()


async def test_the_checkpoints_of_deleted_conversations_are_deleted_and_no_others(saver):
    await clear_checkpoint_tables()  # other tests' threads would count as deleted conversations'
    live, gone = await two_conversations()
    threads = {"live": str(live.id), "gone": str(gone.id), "other": "healthz"}
    for thread_id in threads.values():
        await write_thread(saver, thread_id)
    await aconversation_delete(conversation=gone)
    assert await checkpoint_rows(threads["gone"]) == 0  # the delete took them
    await write_thread(saver, threads["gone"])  # then a run wrote, and its process died
    rows = {name: await checkpoint_rows(thread_id) for name, thread_id in threads.items()}
    assert rows["gone"] >= 2

    report = await orm.to_async(checkpoints_prune)(keep=20, dry_run=True)
    assert report.of_deleted_conversations == {threads["gone"]: 1}
    assert report.checkpoints + report.writes + report.blobs == rows["gone"]
    assert {name: await checkpoint_rows(thread_id) for name, thread_id in threads.items()} == rows

    output = await prune_command("--keep", "20", "--idle-for", "7d")  # deleted ones, idle or not
    assert f"{threads['gone']}: deleted 1 checkpoints (its conversation was deleted)" in output
    assert "1 deleted ones found" in output
    assert {name: await checkpoint_rows(thread_id) for name, thread_id in threads.items()} == {**rows, "gone": 0}

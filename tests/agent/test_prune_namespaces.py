"""Retention keeps the latest checkpoints of each namespace of a thread: a subgraph's
checkpoints (namespace "child:…") do not count against the graph's own (namespace "")."""

import pytest
from django.contrib.auth.models import User
from langgraph.checkpoint.base import empty_checkpoint

from agent.checkpointer import open_checkpointer
from conversations import orm
from conversations.checkpoints import checkpoints_prune
from conversations.services.conversations import conversation_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_threads_disconnect_after")]

SUBGRAPH = "child:1d5b0c3e-0000-0000-0000-000000000000"


@pytest.fixture
async def saver():
    checkpointer = await open_checkpointer()
    yield checkpointer.saver
    await checkpointer.close()


async def write_checkpoints(saver, thread_id: str, namespace: str, values: list[str]) -> list[str]:
    """One checkpoint per value, each the child of the one before, each with its value
    (a blob of the namespace, on PostgreSQL); their ids, oldest first."""
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}}
    ids = []
    for version, value in enumerate(values, start=1):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": [value]}
        checkpoint["channel_versions"] = {"messages": str(version)}
        config = await saver.aput(config, checkpoint, {"source": "loop", "step": version}, {"messages": str(version)})
        ids.append(config["configurable"]["checkpoint_id"])
    return ids


@orm.to_async
def a_conversation():
    return conversation_create(user=User.objects.create_user("alice"))


async def test_the_latest_checkpoints_of_each_namespace_are_kept(saver):
    thread_id = str((await a_conversation()).id)
    graph = await write_checkpoints(saver, thread_id, "", ["one", "two"])
    subgraph = await write_checkpoints(saver, thread_id, SUBGRAPH, ["a", "b", "c"])  # newer than the graph's

    report = await orm.to_async(checkpoints_prune)(keep=2)

    assert report.by_conversation == {thread_id: 1}  # the subgraph's oldest
    for namespace, kept, value in [("", graph, "two"), (SUBGRAPH, subgraph[1:], "c")]:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": namespace}}
        assert [found.config["configurable"]["checkpoint_id"] async for found in saver.alist(config)] == kept[::-1]
        head = await saver.aget_tuple(config)
        assert head.checkpoint["channel_values"]["messages"] == [value]  # its value's blob was kept

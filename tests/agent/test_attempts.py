"""Each run executing on a process is one attempt (conversations.runs.attempt), which owns
all of its state: however it ends, the executor holds nothing of it afterwards (no
attempt, no conversation's lock), only the runs that stay held here and wait for their
turn."""

import asyncio

import psycopg
import pytest
from django.contrib.auth.models import User
from langchain_core.messages import AIMessage

from agent.graph import MODEL_NODE
from conversations import events, orm
from conversations.models import Run
from conversations.runs.executor import RunExecutor
from conversations.services.conversations import aconversation_delete, conversation_create
from conversations.services.turns import amessage_send
from tests.support.executor import GraphThatEndsAtOnce, assert_holds_nothing, attempt_tasks, send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_threads_disconnect_after")]


@pytest.fixture(autouse=True)
def no_trimming(settings):
    settings.CHECKPOINTS_KEPT = 0


@orm.to_async
def new_conversation():
    return conversation_create(user=User.objects.create_user("alice"))


@orm.to_async
def status_of(run) -> str | None:
    return Run.objects.filter(pk=run.id).values_list("status", flat=True).first()


@orm.to_async
def lose_the_lease(run) -> None:
    """Another process took the run over."""
    Run.objects.filter(pk=run.id).update(owner="another-machine/1:2:abc")


async def until_ended(executor) -> None:
    """Wait for every attempt on the executor to end, those submitted meanwhile too."""
    while tasks := attempt_tasks(executor):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


class GraphThatFails(GraphThatEndsAtOnce):
    def __init__(self, error: Exception):
        self.error = error

    async def astream(self, *args, **kwargs):
        raise self.error
        yield


class GraphThatHangs(GraphThatEndsAtOnce):
    def __init__(self):
        self.streaming = asyncio.Event()

    async def astream(self, *args, **kwargs):
        self.streaming.set()
        await asyncio.sleep(60)
        yield


class GraphWhoseConversationIsDeleted(GraphThatEndsAtOnce):
    """The conversation is deleted while the model replies: the reply's write finds the run gone."""

    def __init__(self, conversation):
        self.conversation = conversation

    async def astream(self, *args, **kwargs):
        await aconversation_delete(conversation=self.conversation)
        call = {"id": "call-1", "name": "current_time", "args": {}}
        yield "updates", {MODEL_NODE: {"messages": [AIMessage(content="", tool_calls=[call], id="the-call")]}}


async def test_runs_that_succeed_leave_nothing_behind():
    executor = RunExecutor(GraphThatEndsAtOnce())
    conversation = await new_conversation()
    runs = [await send(executor, conversation) for _ in range(2)]  # the second waits for the first
    await until_ended(executor)
    assert [await status_of(run) for run in runs] == [Run.Status.SUCCEEDED] * 2
    assert_holds_nothing(executor)


async def test_a_run_that_fails_leaves_nothing_behind():
    executor = RunExecutor(GraphThatFails(RuntimeError("the model server went away")))
    conversation = await new_conversation()
    run = await send(executor, conversation)
    await until_ended(executor)
    assert await status_of(run) == Run.Status.FAILED
    assert_holds_nothing(executor)


async def test_a_stopped_run_leaves_nothing_behind():
    graph = GraphThatHangs()
    executor = RunExecutor(graph)
    conversation = await new_conversation()
    try:
        run = await send(executor, conversation)
        await asyncio.wait_for(graph.streaming.wait(), 30)
        assert executor.cancel(run.id)
        await until_ended(executor)
    finally:
        await events.forget(conversation.id)
    assert await status_of(run) == Run.Status.CANCELLED
    assert not executor.cancel(run.id)  # it no longer runs here
    assert_holds_nothing(executor)


async def test_a_run_stopped_before_its_task_began_ends_cancelled():
    """A task cancelled before its first step would never run: the attempt sees the Stop as it begins."""
    executor = RunExecutor(GraphThatHangs())
    conversation = await new_conversation()
    try:
        run = await send(executor, conversation)
        assert executor.cancel(run.id)  # at once: its task has not had a step yet
        await until_ended(executor)
    finally:
        await events.forget(conversation.id)
    assert await status_of(run) == Run.Status.CANCELLED
    assert_holds_nothing(executor)


async def test_a_run_whose_conversation_is_deleted_leaves_nothing_behind():
    conversation = await new_conversation()
    executor = RunExecutor(GraphWhoseConversationIsDeleted(conversation))
    run = await send(executor, conversation)
    await until_ended(executor)
    assert await status_of(run) is None
    assert_holds_nothing(executor)


async def test_a_run_stopped_by_a_database_outage_is_only_left_to_resume():
    executor = RunExecutor(GraphThatFails(psycopg.OperationalError("the database went away")))
    conversation = await new_conversation()
    run = await send(executor, conversation)
    await until_ended(executor)
    assert await status_of(run) == Run.Status.RUNNING
    assert executor._deferred == {str(conversation.id): {str(run.id)}}  # maintenance submits it again
    executor._deferred.clear()  # as maintenance does before it submits the runs held here
    assert_holds_nothing(executor)


async def test_a_run_whose_lease_was_lost_is_forgotten_at_the_next_maintenance_round(settings):
    settings.RUN_RECOVERY_INTERVAL_SECONDS = 0.05
    executor = RunExecutor(GraphThatEndsAtOnce())
    conversation = await new_conversation()
    sent = [
        await amessage_send(conversation=conversation, content=text, client_id=None, owner=executor.owner)
        for text in ("one", "two")
    ]
    first, second = (accepted.run for accepted in sent)  # the second queued behind the first
    await lose_the_lease(second)  # taken over by another process before its attempt starts it
    for accepted in sent:
        executor.submit(accepted.run, started=accepted.started)
    await until_ended(executor)
    assert (await status_of(first), await status_of(second)) == (Run.Status.SUCCEEDED, Run.Status.QUEUED)
    executor.start()
    try:
        for _ in range(100):
            if not executor._deferred:
                break
            await asyncio.sleep(0.05)
    finally:
        await executor.shutdown()
    assert_holds_nothing(executor)


async def test_a_shutdown_leaves_nothing_behind():
    executor = RunExecutor(GraphThatHangs())
    conversation = await new_conversation()
    run = await send(executor, conversation)  # its task has not begun
    await executor.shutdown()
    assert await status_of(run) == Run.Status.RUNNING  # on record as it was, for another process
    assert_holds_nothing(executor)

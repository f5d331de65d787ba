"""The executor, around a stand-in graph: a run its send started runs as it is, without a
second write to start it (a queued one it starts itself, transitions.run_start); the run's
last reply is stored by its end and goes out with it, also when the run is stopped; a
database failure at its end leaves it to resume."""

import asyncio
import json

import psycopg
import pytest
from django.contrib.auth.models import User
from langchain_core.messages import AIMessage

from agent.graph import MODEL_NODE
from conversations import events, orm
from conversations.models import Message, Run
from conversations.runs import transitions
from conversations.runs.executor import RunExecutor
from conversations.services.conversations import conversation_create
from conversations.services.turns import amessage_send
from tests.support.executor import GraphThatEndsAtOnce, attempt_tasks, send, watching

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_threads_disconnect_after")]


@orm.to_async  # as the app's calls: on the pool's threads, whose connections are closed after
def new_conversation():
    return conversation_create(user=User.objects.create_user("alice"))


@orm.to_async
def stored(runs):
    return [Run.objects.get(pk=run.id) for run in runs]


async def test_a_run_started_by_its_send_is_not_started_again(monkeypatch, settings):
    settings.CHECKPOINTS_KEPT = 0
    starts = []
    start = transitions.arun_start

    async def counted_start(**fields):
        starts.append(fields["run_id"])
        return await start(**fields)

    monkeypatch.setattr(transitions, "arun_start", counted_start)
    executor = RunExecutor(GraphThatEndsAtOnce())
    conversation = await new_conversation()
    accepted = [
        await amessage_send(conversation=conversation, content=text, client_id=None, owner=executor.owner)
        for text in ("one", "two")
    ]
    for turn in accepted:
        executor.submit(turn.run, started=turn.started)
    await asyncio.wait_for(asyncio.gather(*attempt_tasks(executor)), 30)

    sent = [turn.run for turn in accepted]
    assert [turn.started is not None for turn in accepted] == [True, False]
    assert starts == [str(sent[1].id)]  # only the queued one
    ended = await stored(sent)
    assert [(run.status, run.attempts, run.checkpoint_id) for run in ended] == [(Run.Status.SUCCEEDED, 1, "a-checkpoint")] * 2


async def send_and_run(executor, conversation) -> Run:
    """A message sent to the conversation, and its run executed until it stops."""
    run = await send(executor, conversation)
    await asyncio.wait_for(asyncio.gather(*attempt_tasks(executor)), 30)
    return run


class GraphThatReplies(GraphThatEndsAtOnce):
    async def astream(self, *args, **kwargs):
        yield "updates", {MODEL_NODE: {"messages": [AIMessage(content="All done.", id="the-reply")]}}


async def test_the_runs_last_reply_is_stored_and_goes_out_with_its_end_in_one_step(monkeypatch, settings):
    settings.CHECKPOINTS_KEPT = 0
    stored_alone = []
    monkeypatch.setattr(transitions, "amessage_store", lambda **fields: stored_alone.append(fields))
    executor = RunExecutor(GraphThatReplies())
    conversation = await new_conversation()
    async with watching(conversation) as receive:
        run = await send_and_run(executor, conversation)
        sent = await asyncio.wait_for(receive(), 5)
        ended = await asyncio.wait_for(receive(), 5)
    assert [json.loads(text)["type"] for text in sent["texts"]] == ["message", "run", "run"]
    # A client that answers the reply at once finds the run ended.
    frames = [json.loads(text) for text in ended["texts"]]
    assert [(frame["type"], frame["seq"]) for frame in frames] == [("message", 4), ("run", 5)]
    assert frames[0]["message"]["content"] == "All done." and frames[1]["run"]["status"] == "succeeded"
    assert (await stored([run]))[0].status == Run.Status.SUCCEEDED
    # Stored by the run's end (transitions.run_finish), not by a call of its own.
    assert stored_alone == []
    assert (await replies(run)) == [("All done.", True)]


@orm.to_async
def replies(run):
    return [(message.content, message.stopped is False) for message in Message.objects.filter(run=run, role="assistant")]


class GraphThatRepliesThenHangs(GraphThatEndsAtOnce):
    """The model's reply is complete; the run is stopped before it ends."""

    replied = None

    async def astream(self, *args, **kwargs):
        yield "updates", {MODEL_NODE: {"messages": [AIMessage(content="All done.", id="the-reply")]}}
        self.replied.set()
        await asyncio.sleep(60)


async def test_a_stop_after_the_last_reply_keeps_it_whole(settings):
    settings.CHECKPOINTS_KEPT = 0
    graph = GraphThatRepliesThenHangs()
    graph.replied = asyncio.Event()
    executor = RunExecutor(graph)
    conversation = await new_conversation()
    try:
        run = await send(executor, conversation)
        await asyncio.wait_for(graph.replied.wait(), 30)
        assert await replies(run) == []  # held for the run's end
        assert executor.cancel(run.id)
        await asyncio.wait_for(asyncio.gather(*attempt_tasks(executor), return_exceptions=True), 30)
    finally:
        await events.forget(conversation.id)
    assert (await stored([run]))[0].status == Run.Status.CANCELLED
    assert await replies(run) == [("All done.", True)]  # stored whole, not as a stopped partial


async def test_a_database_failure_at_the_runs_end_leaves_it_to_resume_from_its_checkpoint(monkeypatch, settings):
    """The reply is in the run's last checkpoint: the resumed run stores it (the path of a
    process that died there, tests/fault). Nothing unstored is sent meanwhile."""
    settings.CHECKPOINTS_KEPT = 0

    def database_down(**fields):
        raise psycopg.OperationalError("the database went away")

    # The first write of the run's end (transitions.run_finish) fails.
    monkeypatch.setattr(transitions, "message_store", database_down)
    executor = RunExecutor(GraphThatReplies())
    conversation = await new_conversation()
    async with watching(conversation) as receive:
        run = await send_and_run(executor, conversation)
        await asyncio.wait_for(receive(), 5)  # the send's message and run
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(receive(), 0.5)
    assert (await stored([run]))[0].status == Run.Status.RUNNING
    assert executor._deferred[str(conversation.id)] == {str(run.id)}  # maintenance submits it again
    assert await replies(run) == []

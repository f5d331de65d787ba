"""The executor runs a run its send started as it is, without a second write to start it;
a run that was queued it starts itself (services.run_start)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from agent.executor import RunExecutor
from conversations import services
from conversations.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


class StubSaver:
    def forget_last_written(self, thread_id):
        pass

    def take_last_written(self, thread_id, run_id):
        return "a-checkpoint"


class GraphThatEndsAtOnce:
    """What the executor does around the graph is under test, not the graph."""

    checkpointer = StubSaver()

    async def astream(self, *args, **kwargs):
        return
        yield


@sync_to_async
def new_conversation():
    return services.conversation_create(user=User.objects.create_user("alice"))


async def test_a_run_started_by_its_send_is_not_started_again(monkeypatch, settings):
    settings.CHECKPOINTS_KEPT = 0
    starts = []
    start = services.arun_start

    async def counted_start(**fields):
        starts.append(fields["run_id"])
        return await start(**fields)

    monkeypatch.setattr(services, "arun_start", counted_start)
    executor = RunExecutor(GraphThatEndsAtOnce())
    conversation = await new_conversation()
    sent = [
        (await services.amessage_send(conversation=conversation, content=text, client_id=None, owner=executor.owner))[1]
        for text in ("one", "two")
    ]
    for run in sent:
        executor.submit(run)
    await asyncio.wait_for(asyncio.gather(*executor._tasks.values()), 30)

    assert [run.started_on_creation for run in sent] == [True, False]
    assert starts == [str(sent[1].id)]  # only the queued one
    ended = [await Run.objects.aget(pk=run.id) for run in sent]
    assert [(run.status, run.attempts, run.checkpoint_id) for run in ended] == [(Run.Status.SUCCEEDED, 1, "a-checkpoint")] * 2

"""The executor runs a run its send started as it is, without a second write to start it;
a run that was queued it starts itself (services.run_start)."""

import asyncio
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connections

from agent.executor import RunExecutor
from conversations import orm, services
from conversations.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def orm_threads_disconnect_after(settings):
    """On PostgreSQL the ORM calls run on a pool of threads, each with its connection:
    closed after the test, or the test database could not be dropped."""
    yield
    if orm._executor is None:
        return
    every_thread = threading.Barrier(settings.ORM_THREADS)

    def disconnect():
        connections.close_all()
        every_thread.wait(timeout=10)  # holds this thread, so each thread runs one

    for done in [orm._executor.submit(disconnect) for _ in range(settings.ORM_THREADS)]:
        done.result()


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


@orm.to_async  # as the app's calls: on the pool's threads, whose connections are closed after
def new_conversation():
    return services.conversation_create(user=User.objects.create_user("alice"))


@orm.to_async
def stored(runs):
    return [Run.objects.get(pk=run.id) for run in runs]


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
    ended = await stored(sent)
    assert [(run.status, run.attempts, run.checkpoint_id) for run in ended] == [(Run.Status.SUCCEEDED, 1, "a-checkpoint")] * 2

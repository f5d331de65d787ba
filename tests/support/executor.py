"""The executor around a stand-in graph: what the executor does around the graph is
under test, not the graph; and what a conversation's sockets are sent."""

import asyncio
import contextlib

from channels.layers import get_channel_layer

from conversations import events
from conversations.models import Run
from conversations.services.turns import amessage_send


class StubSaver:
    def forget_last_written(self, thread_id):
        pass

    def take_last_written(self, thread_id, run_id):
        return "a-checkpoint"

    def count_due(self, thread_id, every):
        return False  # no checkpoints to trim


class GraphThatEndsAtOnce:
    """What the executor does around the graph is under test, not the graph."""

    checkpointer = StubSaver()

    async def astream(self, *args, **kwargs):
        return
        yield


@contextlib.asynccontextmanager
async def watching(conversation):
    """Receive what the conversation's sockets are sent (one channel message per step)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(conversation.id), channel)
    try:
        yield lambda: layer.receive(channel)
    finally:
        await layer.group_discard(events.group_name(conversation.id), channel)
        await events.forget(conversation.id)


async def send(executor, conversation) -> Run:
    """A message sent to the conversation; its run submitted to the executor."""
    accepted = await amessage_send(conversation=conversation, content="hi", client_id=None, owner=executor.owner)
    executor.submit(accepted.run, started=accepted.started)
    return accepted.run


def attempt_tasks(executor) -> list[asyncio.Task]:
    """The tasks of the attempts executing on the executor now."""
    return [attempt.task for attempt in executor._attempts.values()]


def assert_holds_nothing(executor) -> None:
    """The executor keeps nothing of the attempts that ended: none of them, no run
    waiting for its turn, no conversation (nor its lock)."""
    assert executor._attempts == {}
    assert not any(executor._deferred.values())
    assert executor._conversations == {}

"""A message sent while a run is active: queued (default), rejected, or interrupting."""

import pytest

from tests.support.in_process import run_ended, table_counts

pytestmark = pytest.mark.django_db(transaction=True)


def finished(run_id):
    return lambda f: f["type"] == "run" and f["run"]["id"] == run_id and f["run"]["status"] in {"succeeded", "cancelled", "failed"}


async def start_long_reply(socket) -> str:
    await socket.send({"type": "message.send", "content": "slow 400"})
    frames = await socket.receive_until(lambda f: f["type"] == "token")
    return [f for f in frames if f["type"] == "run"][0]["run"]["id"]


async def alices_socket(people):
    alice = await people("alice")
    return await alice.open((await alice.conversation()).id)


async def test_queue_runs_the_second_message_after_the_first(people):
    socket = await alices_socket(people)
    first = await start_long_reply(socket)
    await socket.send({"type": "message.send", "content": "second"})
    frames = await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "succeeded"
                                        and f["run"]["id"] != first)
    ended = [f["run"]["id"] for f in frames if f["type"] == "run" and f["run"]["status"] == "succeeded"]
    assert ended[0] == first and len(ended) == 2
    replies = [f["message"]["content"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
    assert replies[0].endswith("tick400") and replies[1] == 'You said: "second"'


async def test_reject_refuses_the_message_and_stores_nothing(people, settings):
    settings.DOUBLE_TEXTING = "reject"
    socket = await alices_socket(people)
    first = await start_long_reply(socket)
    before = await table_counts()
    await socket.send({"type": "message.send", "content": "too soon", "client_id": "x1"})
    error = await socket.receive_until(lambda f: f["type"] == "error")
    assert error[-1]["code"] == "conflict"
    assert await table_counts() == before
    await socket.receive_until(finished(first))
    await socket.send({"type": "message.send", "content": "now", "client_id": "x1"})
    frames = await socket.receive_until(run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"


async def test_interrupt_cancels_the_active_run_and_starts_the_new_one(people, settings):
    settings.DOUBLE_TEXTING = "interrupt"
    socket = await alices_socket(people)
    first = await start_long_reply(socket)
    await socket.send({"type": "message.send", "content": "change of plan"})
    frames = await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["id"] != first
                                        and f["run"]["status"] == "succeeded")
    statuses = {f["run"]["id"]: f["run"]["status"] for f in frames if f["type"] == "run"}
    assert statuses[first] == "cancelled"
    replies = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"]
    assert replies[0]["stopped"] is True and not replies[0]["content"].endswith("tick400")
    assert replies[-1]["content"] == 'You said: "change of plan"'


async def test_a_full_queue_refuses_the_next_message_and_stores_nothing(people, settings):
    settings.RUN_QUEUE_MAX = 2
    socket = await alices_socket(people)
    await start_long_reply(socket)
    for text in ("second", "third"):
        await socket.send({"type": "message.send", "content": text})
        await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "queued")
    before = await table_counts()
    await socket.send({"type": "message.send", "content": "fourth", "client_id": "c-4"})
    refused = await socket.receive_until(lambda f: f["type"] == "error")
    assert refused[-1]["code"] == "conflict" and "2 messages already wait" in refused[-1]["message"]
    assert await table_counts() == before
    await socket.send({"type": "run.cancel"})
    await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "cancelled")
    # Once one has started, there is room again, and the same client_id is accepted.
    await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "running")
    await socket.send({"type": "message.send", "content": "fourth", "client_id": "c-4"})
    accepted = await socket.receive_until(lambda f: f["type"] == "message" and f["message"]["content"] == "fourth")
    assert accepted[-1]["message"]["role"] == "user"
    # The runs end before the test does: the runtime's close would cut them mid-write.
    await socket.receive_until(lambda f: f["type"] == "message" and f["message"]["content"] == 'You said: "fourth"')
    await socket.receive_until(run_ended)

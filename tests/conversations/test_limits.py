"""Per-user limits: messages and approval decisions per time window, open websockets.
(Limits shared by several server processes: tests/fault/test_limits_across_processes.py.)"""

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager

import pytest

from conversations import limits
from conversations.models import Approval, Run
from tests.support.frames import EMAIL
from tests.support.in_process import TIMEOUT, Socket, close_code, communicator, run_ended, statuses, table_counts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("counts_of_this_test")]

CLOSE_TOO_MANY_SOCKETS = 4429


@pytest.fixture
def counts_of_this_test(monkeypatch):
    """The limits count in a namespace of this test's own: in Redis, the counts of an
    earlier run's users (whose ids this run's test database numbers again) are not this
    test's."""
    namespace = uuid.uuid4().hex[:12]
    monkeypatch.setattr(limits, "_namespace", lambda: namespace)


def is_error(frame) -> bool:
    return frame["type"] == "error"


async def refusal(socket: Socket, frame: dict) -> dict:
    """Send a frame that must be rate limited; the error frame."""
    await socket.send(frame)
    error = (await socket.receive_until(is_error))[-1]
    assert error["code"] == "rate_limited", error
    assert error["message"] and isinstance(error["retry_after"], (int, float)), error
    return error


@asynccontextmanager
async def socket_once_free(person, conversation_id, timeout: float = 5):
    """A socket opened as soon as the user has a free slot (retried while refused)."""
    deadline = time.monotonic() + timeout
    while True:
        opened = communicator(person.cookie, conversation_id)
        connected, _ = await opened.connect(timeout=TIMEOUT)
        assert connected
        first = await opened.receive_output(timeout=TIMEOUT)
        if first["type"] == "websocket.send":
            break
        assert first == {"type": "websocket.close", "code": CLOSE_TOO_MANY_SOCKETS}
        assert time.monotonic() < deadline, "the slot was never freed"
        await opened.disconnect()
        await asyncio.sleep(0.1)
    socket = Socket(opened, json.loads(first["text"]))
    try:
        yield socket
    finally:
        await socket.close()


async def test_a_flood_of_messages_is_refused_stores_nothing_and_ends_after_retry_after(people, settings):
    settings.RATE_LIMIT_MESSAGES = (2, 3.0)
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    first = await socket.chat("one")
    second = await socket.chat("two")
    asked, answered = first[0]["message"], second[-2]["message"]
    before = await table_counts()
    errors = [
        await refusal(socket, {"type": "message.send", "content": "three"}),
        await refusal(socket, {"type": "message.edit", "message_id": asked["id"], "content": "one, edited"}),
        await refusal(socket, {"type": "message.regenerate", "message_id": answered["id"]}),
    ]
    assert await table_counts() == before
    assert all(0 < error["retry_after"] <= 3 for error in errors)
    # Refusals were not counted: once the first message leaves the window, one more fits.
    await asyncio.sleep(errors[-1]["retry_after"] + 0.05)
    frames = await socket.chat("three")
    assert frames[0]["message"]["content"] == "three" and frames[-1]["run"]["status"] == "succeeded"


async def test_the_message_limit_counts_each_user_across_sockets_and_conversations(people, settings):
    settings.RATE_LIMIT_MESSAGES = (1, 60.0)
    alice, bob = await people("alice"), await people("bob")
    socket = await alice.open((await alice.conversation()).id)
    second_tab = await alice.open((await alice.conversation()).id)
    await socket.chat("hello")
    before = await table_counts()
    error = await refusal(second_tab, {"type": "message.send", "content": "elsewhere"})
    assert 55 < error["retry_after"] <= 60
    assert await table_counts() == before
    bobs = await bob.open((await bob.conversation()).id)
    frames = await bobs.chat("bob is not limited by alice")
    assert frames[-1]["run"]["status"] == "succeeded"


async def test_a_frame_sent_again_with_its_client_id_is_not_counted_against_the_limit(people, settings):
    settings.RATE_LIMIT_MESSAGES = (1, 60.0)
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    first = {"type": "message.send", "content": "hello", "client_id": "c-1"}
    await socket.send(first)
    reply = [f for f in await socket.receive_until(run_ended) if f["type"] == "message"][-1]["message"]
    before = await table_counts()
    await socket.send(first)  # a client retrying after a reconnect
    # An edit or a regeneration sent again with an id already used is not counted either.
    await socket.send({"type": "message.regenerate", "message_id": reply["id"], "client_id": "c-1"})
    await socket.send({"type": "ping"})
    assert [frame["type"] for frame in await socket.receive_until(lambda f: f["type"] == "pong")] == ["pong"]
    assert await table_counts() == before
    await refusal(socket, {"type": "message.send", "content": "a new one", "client_id": "c-2"})


async def test_decisions_are_limited_and_a_refused_one_decides_nothing(people, settings):
    settings.RATE_LIMIT_DECISIONS = (2, 3.0)
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    await socket.send({"type": "message.send", "content": EMAIL})
    frames = await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "waiting")
    approval = [f["approval"] for f in frames if f["type"] == "approval"][0]
    for unknown in ("nope-1", "nope-2"):  # decisions count whatever their outcome
        await socket.send({"type": "approval.decide", "approval_id": unknown, "decision": "approve"})
        assert (await socket.receive_until(is_error))[-1]["code"] == "not_found"
    decide = {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"}
    error = await refusal(socket, decide)
    assert 0 < error["retry_after"] <= 3
    assert await statuses(Approval) == [("pending",)]
    assert await statuses(Run) == [("waiting",)]
    # Messages have a limit of their own.
    await socket.send({"type": "message.send", "content": "queued meanwhile"})
    await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "queued")

    await asyncio.sleep(error["retry_after"] + 0.05)
    await socket.send(decide)
    frames = await socket.receive_until(run_ended)
    assert [f["approval"]["status"] for f in frames if f["type"] == "approval"] == ["approved"]
    assert frames[-1]["run"]["status"] == "succeeded"
    # The queued run ends before the test does: the runtime's close would cut it mid-write.
    await socket.receive_until(lambda f: f["type"] == "message" and f["message"]["content"] == 'You said: "queued meanwhile"')
    await socket.receive_until(run_ended)


async def test_one_socket_over_the_cap_is_closed_with_4429_and_a_closed_socket_frees_its_slot(people, settings):
    settings.WS_MAX_SOCKETS_PER_USER = 2
    alice, bob = await people("alice"), await people("bob")
    mine, other = (await alice.conversation()).id, (await alice.conversation()).id
    first, second = await alice.open(mine), await alice.open(other)
    assert await close_code(alice.cookie, mine) == CLOSE_TOO_MANY_SOCKETS
    assert await close_code(alice.cookie, other) == CLOSE_TOO_MANY_SOCKETS
    bobs = await bob.open((await bob.conversation()).id)
    assert bobs.snapshot["type"] == "snapshot"
    await bobs.close()
    # The open sockets still work.
    assert (await second.chat("still here"))[-1]["run"]["status"] == "succeeded"
    await first.close()
    async with socket_once_free(alice, mine) as third:
        assert (await third.chat("in the freed slot"))[-1]["run"]["status"] == "succeeded"
        assert await close_code(alice.cookie, other) == CLOSE_TOO_MANY_SOCKETS

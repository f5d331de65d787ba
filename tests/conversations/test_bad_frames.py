"""Every kind of bad frame gets its error frame, and changes nothing."""

import pytest

from tests.support.frames import BAD_FRAMES
from tests.support.in_process import table_counts

pytestmark = pytest.mark.django_db(transaction=True)


async def send_raw(socket, raw: str | bytes) -> None:
    if isinstance(raw, bytes):
        await socket.communicator.send_to(bytes_data=raw)
    else:
        await socket.communicator.send_to(text_data=raw)


async def test_each_bad_frame_gets_its_error_and_changes_nothing(people):
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    before = await table_counts()
    for name, raw, code in BAD_FRAMES:
        await send_raw(socket, raw)
        frame = await socket.receive()
        assert frame["type"] == "error", name
        assert frame["code"] == code, name
        assert frame["message"], name
        assert await table_counts() == before, name
    # The socket is still open and usable.
    frames = await socket.chat("still here")
    assert frames[-1]["run"]["status"] == "succeeded"
    assert frames[0]["seq"] == socket.snapshot["seq"] + 1


async def test_a_message_of_exactly_the_limit_is_accepted(people):
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    frames = await socket.chat("y" * 32_000)
    assert frames[0]["message"]["content"] == "y" * 32_000
    assert frames[-1]["run"]["status"] == "succeeded"

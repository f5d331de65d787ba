"""Every kind of bad frame gets its error frame, and changes nothing."""

import json

import pytest

from tests.live import chat, receive

pytestmark = pytest.mark.asyncio

BAD_FRAMES = [
    ("not json", "{", "bad_request"),
    ("not an object", "[1, 2]", "bad_request"),
    ("no type", json.dumps({"content": "hi"}), "bad_request"),
    ("type not a string", json.dumps({"type": 7}), "bad_request"),
    ("unknown type", json.dumps({"type": "conversation.drop"}), "bad_request"),
    ("content missing", json.dumps({"type": "message.send"}), "bad_request"),
    ("content empty", json.dumps({"type": "message.send", "content": "   "}), "bad_request"),
    ("content not a string", json.dumps({"type": "message.send", "content": ["x"]}), "bad_request"),
    ("content too long", json.dumps({"type": "message.send", "content": "x" * 32_001}), "too_large"),
    ("client_id too long", json.dumps({"type": "message.send", "content": "hi", "client_id": "c" * 65}), "bad_request"),
    ("client_id not a string", json.dumps({"type": "message.send", "content": "hi", "client_id": 5}), "bad_request"),
    ("frame over 64 KiB", json.dumps({"type": "message.send", "content": "é" * 33_000}), "too_large"),
    ("binary frame", b"\x00\x01", "bad_request"),
    ("cancel unknown run", json.dumps({"type": "run.cancel", "run_id": "00000000-0000-0000-0000-000000000000"}), "not_found"),
    ("cancel malformed run id", json.dumps({"type": "run.cancel", "run_id": "x"}), "not_found"),
    ("cancel with nothing running", json.dumps({"type": "run.cancel"}), "conflict"),
    ("decide unknown approval", json.dumps({"type": "approval.decide", "approval_id": "nope", "decision": "approve"}), "not_found"),
]


async def test_each_bad_frame_gets_its_error_and_changes_nothing(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        before = database.counts()
        for name, raw, code in BAD_FRAMES:
            await ws.send(raw)
            frame = await receive(ws)
            assert frame["type"] == "error", name
            assert frame["code"] == code, name
            assert frame["message"], name
            assert database.counts() == before, name
        # The socket is still open and usable.
        frames = await chat(ws, "still here")
        assert frames[-1]["run"]["status"] == "succeeded"
        assert frames[0]["seq"] == snapshot["seq"] + 1


async def test_a_message_of_exactly_the_limit_is_accepted(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        frames = await chat(ws, "y" * 32_000)
    assert frames[0]["message"]["content"] == "y" * 32_000
    assert frames[-1]["run"]["status"] == "succeeded"

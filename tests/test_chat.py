"""A conversation over a real websocket, on both backends."""

import asyncio
import json

import pytest

from conversations.selectors import SNAPSHOT_MAX_BYTES
from tests.live import Session, chat, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio


async def test_frames_in_order_and_tokens_add_up_to_the_stored_message(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["conversation"]["id"] == conversation["id"]
        assert snapshot["messages"] == [] and snapshot["run"] is None

        frames = await chat(ws, "slow 30", client_id="c-1")

    kinds = [frame["type"] for frame in frames]
    user_message, queued, running = frames[0], frames[1], frames[2]
    assert user_message["type"] == "message" and user_message["message"]["role"] == "user"
    assert user_message["message"]["content"] == "slow 30"
    assert (queued["run"]["status"], running["run"]["status"]) == ("queued", "running")
    assert kinds[-2:] == ["message", "run"] and frames[-1]["run"]["status"] == "succeeded"
    assert set(kinds[3:-2]) == {"token"}

    reply = frames[-2]["message"]
    tokens = [frame for frame in frames if frame["type"] == "token"]
    assert len(tokens) == 30
    assert {token["message_id"] for token in tokens} == {reply["id"]}
    assert "".join(token["delta"] for token in tokens) == reply["content"]
    assert reply["content"] == " ".join(f"tick{i}" for i in range(1, 31))

    seqs = [frame["seq"] for frame in frames]
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(frames)))

    stored = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "slow 30"), ("assistant", reply["content"])]
    assert stored[1]["id"] == reply["id"]


async def test_recall_sees_earlier_turns_and_a_second_socket_sees_the_same_frames(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws, alice.websocket(conversation["id"]) as watcher:
        await receive(ws)
        await receive(watcher)
        sent = []
        for text in ["first thing", "second thing", "recall"]:
            sent += await chat(ws, text)
        assert sent[-2]["message"]["content"] == "first thing\nsecond thing"
        seen = [await receive(watcher) for _ in sent]
        assert seen == sent


async def test_same_client_id_creates_nothing_new(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await chat(ws, "hello", client_id="same")
        before = database.counts()
        await send(ws, {"type": "message.send", "content": "hello", "client_id": "same"})
        await send(ws, {"type": "ping"})
        assert (await receive(ws)) == {"type": "pong"}
    assert database.counts() == before


async def test_a_reconnecting_socket_gets_the_history_in_its_snapshot(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        frames = await chat(ws, "**bold** and <script>alert(1)</script>")
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
    user, reply = snapshot["messages"]
    assert user["html"].startswith("<p><strong>bold</strong> and &lt;script&gt;")
    assert reply["id"] == frames[-2]["message"]["id"]
    assert snapshot["seq"] >= frames[-1]["seq"]
    listed = alice.request("GET", "/api/conversations/").json()["results"]
    assert listed[0]["id"] == conversation["id"]
    assert listed[0]["title"] == "**bold** and <script>alert(1)</script>"


async def test_a_conversation_over_a_mebibyte_opens_with_its_latest_page(alice):
    """Each turn here is ~330 kB of JSON: two messages of 32,000 "<", whose html escapes
    each to four characters. The snapshot holds the latest that fit in
    SNAPSHOT_MAX_BYTES; the endpoint gives the others, a page at a time."""
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        for _ in range(4):
            await chat(ws, "<" * 32_000)
    async with alice.websocket(conversation["id"]) as ws:
        raw = await ws.recv()
    snapshot = json.loads(raw)
    assert len(raw) <= SNAPSHOT_MAX_BYTES and len(snapshot["messages"]) < 8 and snapshot["has_older"]
    messages, cursor = snapshot["messages"], snapshot["older_cursor"]
    while cursor:
        page = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/", params={"before": cursor}).json()
        messages, cursor = page["results"] + messages, page["older_cursor"]
    assert [message["content"].count("<") for message in messages] == [32_000] * 8


async def test_checkpoint_storage_grows_by_the_same_amount_each_turn(make_server, database):
    """The state holds one turn, so turn 30 stores no more than turn 10 (MessagesState would).
    Trimming after runs is off here: this is about what each turn writes."""
    alice = Session(make_server(CHECKPOINTS_KEPT="0").start(), "alice")
    conversation = alice.create_conversation()
    sizes = []
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        for turn in range(1, 31):
            await chat(ws, f"message number {turn:02d} " + "x" * 200)
            if turn % 10 == 0:
                sizes.append(database.checkpoint_bytes(conversation["id"]))
        recall = await chat(ws, "recall")
    early, late = sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert late <= early * 1.1, sizes
    assert recall[-2]["message"]["content"].count("message number") == 30


async def test_closing_the_tab_does_not_stop_the_run(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 100"})
        await receive(ws)  # the user's message; the socket closes while the run goes on
    for _ in range(100):
        if database.query("SELECT status FROM conversations_run") == [("succeeded",)]:
            break
        await asyncio.sleep(0.1)
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
    assert snapshot["run"] is None
    assert snapshot["messages"][1]["content"].endswith("tick99 tick100")


async def test_reconnecting_mid_reply_gets_the_text_so_far_then_the_rest(alice):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 300"})
        await receive_until(ws, lambda f: f["type"] == "token" and "tick30" in f["delta"])
        async with alice.websocket(conversation["id"]) as late:
            snapshot = await receive(late)
            frames = await receive_until(late, run_ended)
        await receive_until(ws, run_ended)
    partial = snapshot["messages"][-1]
    assert partial["streaming"] is True and partial["role"] == "assistant"
    assert partial["content"].startswith("tick1 tick2") and "tick30" in partial["content"]
    assert snapshot["run"]["status"] == "running"
    # A client applies only frames newer than its snapshot (PROTOCOL.md); with those,
    # the text so far plus the later tokens is the reply, with no gap and no repeat.
    later = [f for f in frames if f["seq"] > snapshot["seq"]]
    assert [f["seq"] for f in later] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(later)))
    tokens = "".join(f["delta"] for f in later if f["type"] == "token" and f["message_id"] == partial["id"])
    final = [f["message"] for f in frames if f["type"] == "message"][-1]
    assert final["id"] == partial["id"]
    assert partial["content"] + tokens == final["content"] == " ".join(f"tick{i}" for i in range(1, 301))

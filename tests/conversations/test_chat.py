"""A conversation over the websocket: frames, history, reconnects, snapshots."""

import asyncio
import json

import pytest
from django.db import connection

from conversations.models import Run
from conversations.orm import to_async
from conversations.pages import SNAPSHOT_MAX_BYTES
from tests.support.in_process import TIMEOUT, browser, communicator, run_ended, statuses, table_counts

pytestmark = pytest.mark.django_db(transaction=True)


async def test_frames_in_order_and_tokens_add_up_to_the_stored_message(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    snapshot = socket.snapshot
    assert snapshot["type"] == "snapshot"
    assert snapshot["conversation"]["id"] == str(conversation.id)
    assert snapshot["messages"] == [] and snapshot["run"] is None

    frames = await socket.chat("slow 30", client_id="c-1")

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

    messages = await (await browser(alice)).request("GET", f"/api/conversations/{conversation.id}/messages/")
    stored = messages.json()["results"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "slow 30"), ("assistant", reply["content"])]
    assert stored[1]["id"] == reply["id"]


async def test_recall_sees_earlier_turns_and_a_second_socket_sees_the_same_frames(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket, watcher = await alice.open(conversation.id), await alice.open(conversation.id)
    sent = []
    for text in ["first thing", "second thing", "recall"]:
        sent += await socket.chat(text)
    assert sent[-2]["message"]["content"] == "first thing\nsecond thing"
    seen = [await watcher.receive() for _ in sent]
    assert seen == sent


async def test_same_client_id_creates_nothing_new(people):
    alice = await people("alice")
    socket = await alice.open((await alice.conversation()).id)
    await socket.chat("hello", client_id="same")
    before = await table_counts()
    await socket.send({"type": "message.send", "content": "hello", "client_id": "same"})
    await socket.send({"type": "ping"})
    assert (await socket.receive()) == {"type": "pong"}
    assert await table_counts() == before


async def test_a_reconnecting_socket_gets_the_history_in_its_snapshot(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    frames = await socket.chat("**bold** and <script>alert(1)</script>")
    await socket.close()
    snapshot = (await alice.open(conversation.id)).snapshot
    user, reply = snapshot["messages"]
    assert user["html"].startswith("<p><strong>bold</strong> and &lt;script&gt;")
    assert reply["id"] == frames[-2]["message"]["id"]
    assert snapshot["seq"] >= frames[-1]["seq"]
    listed = (await (await browser(alice)).request("GET", "/api/conversations/")).json()["results"]
    assert listed[0]["id"] == str(conversation.id)
    assert listed[0]["title"] == "**bold** and <script>alert(1)</script>"


async def test_a_conversation_over_a_mebibyte_opens_with_its_latest_page(people):
    """Each turn here is ~330 kB of JSON: two messages of 32,000 "<", whose html escapes
    each to four characters. The snapshot holds the latest that fit in
    SNAPSHOT_MAX_BYTES; the endpoint gives the others, a page at a time."""
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    for _ in range(4):
        await socket.chat("<" * 32_000)
    await socket.close()
    reopened = communicator(alice.cookie, conversation.id)
    connected, _ = await reopened.connect(timeout=TIMEOUT)
    assert connected
    raw = await reopened.receive_from(timeout=TIMEOUT)
    await reopened.disconnect()
    snapshot = json.loads(raw)
    assert len(raw) <= SNAPSHOT_MAX_BYTES and len(snapshot["messages"]) < 8 and snapshot["has_older"]
    alice_http = await browser(alice)
    messages, cursor = snapshot["messages"], snapshot["older_cursor"]
    while cursor:
        page = (await alice_http.request("GET", f"/api/conversations/{conversation.id}/messages/", params={"before": cursor})).json()
        messages, cursor = page["results"] + messages, page["older_cursor"]
    assert [message["content"].count("<") for message in messages] == [32_000] * 8


@to_async
def checkpoint_bytes(thread_id) -> int:
    """The bytes the conversation's checkpoints take in the saver's tables."""
    if connection.vendor == "sqlite":
        parts = [
            "SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints WHERE thread_id = %s",
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id = %s",
        ]
    else:
        parts = [
            "SELECT COALESCE(SUM(pg_column_size(checkpoint) + pg_column_size(metadata)), 0) FROM checkpoints WHERE thread_id = %s",
            "SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_blobs WHERE thread_id = %s",
            "SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_writes WHERE thread_id = %s",
        ]
    with connection.cursor() as cursor:
        total = 0
        for sql in parts:
            cursor.execute(sql, [str(thread_id)])
            total += int(cursor.fetchone()[0])
    return total


async def test_checkpoint_storage_grows_by_the_same_amount_each_turn(people, settings):
    """The state holds one turn, so turn 30 stores no more than turn 10 (MessagesState would).
    Trimming after runs is off here: this is about what each turn writes."""
    settings.CHECKPOINTS_KEPT = 0
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    sizes = []
    for turn in range(1, 31):
        await socket.chat(f"message number {turn:02d} " + "x" * 200)
        if turn % 10 == 0:
            sizes.append(await checkpoint_bytes(conversation.id))
    recall = await socket.chat("recall")
    early, late = sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert late <= early * 1.1, sizes
    assert recall[-2]["message"]["content"].count("message number") == 30


async def test_closing_the_tab_does_not_stop_the_run(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": "slow 100"})
    await socket.receive()  # the user's message; the socket closes while the run goes on
    await socket.close()
    for _ in range(100):
        if await statuses(Run) == [("succeeded",)]:
            break
        await asyncio.sleep(0.1)
    snapshot = (await alice.open(conversation.id)).snapshot
    assert snapshot["run"] is None
    assert snapshot["messages"][1]["content"].endswith("tick99 tick100")


async def test_reconnecting_mid_reply_gets_the_text_so_far_then_the_rest(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": "slow 300"})
    await socket.receive_until(lambda f: f["type"] == "token" and "tick30" in f["delta"])
    late = await alice.open(conversation.id)
    snapshot = late.snapshot
    frames = await late.receive_until(run_ended)
    await late.close()
    await socket.receive_until(run_ended)
    partial = snapshot["messages"][-1]
    assert partial["streaming"] is True and partial["role"] == "assistant"
    assert partial["content"].startswith("tick1 tick2") and "tick30" in partial["content"]
    assert snapshot["run"]["status"] == "running"
    # A client applies only frames newer than its snapshot (docs/protocol.md); with those,
    # the text so far plus the later tokens is the reply, with no gap and no repeat.
    later = [f for f in frames if f["seq"] > snapshot["seq"]]
    assert [f["seq"] for f in later] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(later)))
    tokens = "".join(f["delta"] for f in later if f["type"] == "token" and f["message_id"] == partial["id"])
    final = [f["message"] for f in frames if f["type"] == "message"][-1]
    assert final["id"] == partial["id"]
    assert partial["content"] + tokens == final["content"] == " ".join(f"tick{i}" for i in range(1, 301))

"""History and recall survive a real server process killed with SIGKILL."""

import asyncio

import pytest

from tests.live import Session, chat, interrupt_mid_reply, receive, receive_until, send, snapshot_of, wait_for_runs

pytestmark = pytest.mark.asyncio


async def test_history_recall_and_the_session_cookie_survive_sigkill(server):
    alice = Session(server, "alice")
    conversation = alice.create_conversation("kept")
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        for text in ["remember the milk", "and the eggs"]:
            await chat(ws, text)
    before = (await snapshot_of(alice, conversation))["messages"]

    server.kill()
    server.start()

    # No new login: the session cookie from before the kill (sessions live in the database).
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/").json()["title"] == "kept"
    async with alice.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        assert snapshot["messages"] == before
        frames = await chat(ws, "recall")
    assert frames[-2]["message"]["content"] == "remember the milk\nand the eggs"


async def test_a_run_killed_mid_reply_and_the_message_queued_behind_it_run_once_after_restart(make_server, database):
    """The second message is stored and queued behind a long reply: it has no checkpoint
    when the process dies. After the restart both runs happen, once each, in order: the
    killed one resumes at once although its lease is far longer than the bar (the
    restarted process must see that the owner died)."""
    server = make_server(RUN_LEASE_SECONDS="60").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 200"})
        await receive_until(ws, lambda f: f["type"] == "token")
        await send(ws, {"type": "message.send", "content": "after that"})
        await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "queued")
        await receive_until(ws, lambda f: f["type"] == "token" and "tick10" in f["delta"])
        await asyncio.to_thread(server.kill)
    server.start()
    assert await wait_for_runs(database, "succeeded", "succeeded") < 5
    messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "slow 200"),
        ("assistant", " ".join(f"tick{i}" for i in range(1, 201))),
        ("user", "after that"),
        ("assistant", 'You said: "after that"'),
    ]


async def test_a_later_turn_killed_mid_reply_finishes_by_itself_after_restart(make_server, database):
    """A turn after one that succeeded goes to the model as a LangGraph Command: its
    message is written beside the last turn's checkpoint, and it has no checkpoint of its
    own until the model's step ends. Killed before that, it runs again from its message."""
    server = make_server(RUN_LEASE_SECONDS="60").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await chat(ws, "remember the milk")
        await send(ws, {"type": "message.send", "content": "slow 200"})
        await receive_until(ws, lambda f: f["type"] == "token" and "tick10" in f["delta"])
        await asyncio.to_thread(server.kill)
    server.start()
    await wait_for_runs(database, "succeeded", "succeeded", timeout=10)
    messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[3]["content"].split(" ") == [f"tick{i}" for i in range(1, 201)]
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        frames = await chat(ws, "recall")
    assert frames[-2]["message"]["content"] == "remember the milk\nslow 200"


async def test_a_run_that_keeps_dying_ends_failed_and_the_conversation_goes_on(make_server, database):
    server = make_server(RUN_MAX_ATTEMPTS="1").start()
    alice, conversation = await interrupt_mid_reply(server, server.kill)
    server.start()
    await wait_for_runs(database, "failed")
    assert "given up" in database.query("SELECT error FROM conversations_run")[0][0]
    async with alice.websocket(conversation["id"]) as ws:
        assert (await receive(ws))["run"] is None
        frames = await chat(ws, "still there?")
        assert frames[-1]["run"]["status"] == "succeeded"


async def test_sigterm_gives_up_leases_so_the_next_start_resumes_at_once(make_server, database):
    # A long lease: only the release at shutdown can make the resume quick.
    server = make_server(RUN_LEASE_SECONDS="60").start()
    alice, conversation = await interrupt_mid_reply(server, server.stop)
    assert database.query("SELECT status, owner FROM conversations_run") == [("running", "")]
    server.start()
    assert await wait_for_runs(database, "succeeded") < 5
    messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert messages[1]["content"].split(" ") == [f"tick{i}" for i in range(1, 201)]

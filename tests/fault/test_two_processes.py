"""Two daphne processes on one PostgreSQL database and one Redis."""

import asyncio
import time

import pytest

from tests.live import Session, chat, receive, receive_until, send

# xdist_group: under pytest-xdist (`--dist loadgroup`) the module runs in one process,
# so that its tests share one `server_pair`.
pytestmark = [pytest.mark.asyncio, pytest.mark.postgres, pytest.mark.redis, pytest.mark.xdist_group("test_two_processes")]


async def test_a_socket_on_one_process_sees_a_run_of_the_other(two_servers):
    _, (first, second) = two_servers
    alice_first, alice_second = Session(first, "alice"), Session(second, "alice")
    conversation = alice_first.create_conversation()
    async with alice_first.websocket(conversation["id"]) as sender, alice_second.websocket(conversation["id"]) as watcher:
        await receive(sender)
        snapshot = await receive(watcher)
        sent = await chat(sender, "slow 20")
        seen = await receive_until(watcher, lambda f: f.get("seq") == sent[-1]["seq"])
    assert seen == sent
    assert [f["seq"] for f in seen] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(seen)))


async def test_the_survivor_resumes_a_run_whose_process_was_killed(two_servers):
    database, (owner, survivor) = two_servers
    alice_owner, alice_survivor = Session(owner, "alice"), Session(survivor, "alice")
    conversation = alice_owner.create_conversation()
    async with alice_survivor.websocket(conversation["id"]) as watcher:
        await receive(watcher)
        async with alice_owner.websocket(conversation["id"]) as ws:
            await receive(ws)
            await send(ws, {"type": "message.send", "content": "slow 200"})
            await receive_until(ws, lambda f: f["type"] == "token" and "tick10" in f["delta"])
            owner.kill()
            killed = time.monotonic()
        frames = await receive_until(watcher, lambda f: f["type"] == "run" and f["run"]["status"] == "succeeded", timeout=30)
    assert time.monotonic() - killed < 10
    reply = [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]["message"]
    assert reply["content"].split(" ") == [f"tick{i}" for i in range(1, 201)]
    await asyncio.sleep(0.5)
    rows = database.query("SELECT role FROM conversations_message WHERE conversation_id::text = %s ORDER BY created_at",
                          (conversation["id"],))
    assert rows == [("user",), ("assistant",)]


async def test_a_decision_on_one_process_resumes_a_run_started_on_the_other(two_servers, server_pair):
    _, (first, second) = two_servers
    mail = server_pair[2]
    sent_before = len(list(mail.glob("*")))
    alice_first, alice_second = Session(first, "alice"), Session(second, "alice")
    conversation = alice_first.create_conversation()
    async with alice_first.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "email bob@example.com Hi: from A"})
        frames = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "waiting")
    approval = [f["approval"] for f in frames if f["type"] == "approval"][0]
    async with alice_second.websocket(conversation["id"]) as ws:
        snapshot = await receive(ws)
        assert [a["id"] for a in snapshot["approvals"]] == [approval["id"]]
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
        frames = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "succeeded")
    assert len(list(mail.glob("*"))) == sent_before + 1


async def test_stop_reaches_a_run_executing_on_the_other_process(two_servers):
    database, (owner, other) = two_servers
    alice_owner, alice_other = Session(owner, "alice"), Session(other, "alice")
    conversation = alice_owner.create_conversation()
    async with alice_owner.websocket(conversation["id"]) as ws, alice_other.websocket(conversation["id"]) as remote:
        await receive(ws)
        await receive(remote)
        await send(ws, {"type": "message.send", "content": "slow 2000"})
        frames = await receive_until(remote, lambda f: f["type"] == "token" and "tick5" in f["delta"])
        run_id = frames[1]["run"]["id"]
        asked = time.monotonic()
        await send(remote, {"type": "run.cancel", "run_id": run_id})
        frames = await receive_until(remote, lambda f: f["type"] == "run" and f["run"]["status"] == "cancelled", timeout=5)
    assert time.monotonic() - asked < 1.0
    kept = [f["message"] for f in frames if f["type"] == "message"][-1]
    assert kept["stopped"] is True and kept["content"].startswith("tick1 tick2 tick3 tick4 tick5")

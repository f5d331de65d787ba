"""Approvals across a server process killed with SIGKILL: a pending approval survives
and is carried out once; a tool killed mid-call is never run twice. Real processes: the
kill is the point."""

import asyncio

import pytest

from tests.live import Session, ask, receive, receive_until, run_ended, send, wait_for_runs
from tests.support.frames import EMAIL, reply_of
from tests.support.mail import mails

pytestmark = pytest.mark.asyncio


async def test_pending_approval_survives_sigkill_and_resumes_once(mail_server, mail_dir, database):
    server = mail_server().start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
    server.kill()
    server.start()
    async with alice.websocket(conversation["id"]) as first, alice.websocket(conversation["id"]) as second:
        snapshot = await receive(first)
        await receive(second)
        assert [a["id"] for a in snapshot["approvals"]] == [approval["id"]]
        assert snapshot["run"]["status"] == "waiting"
        decision = {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"}
        await asyncio.gather(send(first, decision), send(second, decision))
        frames = await receive_until(first, run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"
    assert reply_of(frames) == "The e-mail was sent."
    assert len(mails(mail_dir)) == 1


async def test_sigkill_while_the_tool_runs_never_sends_twice_and_tells_the_user(mail_server, mail_dir, database):
    server = mail_server(EMAIL_BACKEND="tests.support.mail.SlowFileBackend", SLOW_EMAIL_SECONDS="30").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
        await receive_until(ws, lambda f: f["type"] == "tool" and f["status"] == "started")
        for _ in range(100):
            if mails(mail_dir):
                break
            await asyncio.sleep(0.05)
        server.kill()
    assert len(mails(mail_dir)) == 1
    server.start()
    await wait_for_runs(database, "succeeded")
    assert len(mails(mail_dir)) == 1
    messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert messages[-1]["content"].startswith("I cannot tell whether the send_email call took effect")
    assert database.query("SELECT status FROM agent_toolexecution") == [("unknown",)]

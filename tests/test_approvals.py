"""Tool approvals over the websocket: approve, reject, edit, races, isolation, restarts."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fault.test_restart import wait_for_run_status
from tests.live import Session, free_port, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio

EMAIL = "email bob@example.com Lunch: see you at noon"


@pytest.fixture
def mail_dir(tmp_path):
    return tmp_path / "mail"


@pytest.fixture
def mail_server(make_server, mail_dir):
    def make(**env):
        return make_server(
            EMAIL_BACKEND=env.pop("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"),
            EMAIL_FILE_PATH=str(mail_dir),
            **env,
        )

    return make


def mails(mail_dir) -> list[str]:
    return [p.read_text() for p in sorted(mail_dir.glob("*"))] if mail_dir.exists() else []


def until_waiting(frame) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed"}


async def ask(ws, content: str) -> tuple[dict, list[dict]]:
    """Send a message that calls a tool needing approval; the approval and the frames."""
    await send(ws, {"type": "message.send", "content": content})
    frames = await receive_until(ws, until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approvals = [f["approval"] for f in frames if f["type"] == "approval"]
    assert len(approvals) == 1
    return approvals[0], frames


async def decide(ws, approval, decision, **fields) -> list[dict]:
    await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": decision, **fields})
    return await receive_until(ws, run_ended)


def reply_of(frames) -> str:
    return [f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant"][-1]["message"]["content"]


async def test_approve_sends_once_and_the_record_keeps_who_and_when(mail_server, mail_dir, database):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        assert approval["tool"] == "send_email" and approval["status"] == "pending"
        assert approval["args"] == {"to": "bob@example.com", "subject": "Lunch", "body": "see you at noon"}
        assert approval["description"] == "Send an e-mail to bob@example.com with the subject “Lunch”"
        assert approval["allowed"] == ["approve", "reject", "edit"]
        assert mails(mail_dir) == []
        listed = alice.request("GET", "/api/approvals/?status=pending").json()["results"]
        assert [a["id"] for a in listed] == [approval["id"]]
        assert alice.request("GET", "/api/conversations/").json()["results"][0]["pending_approvals"] == 1

        frames = await decide(ws, approval, "approve")
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert (decided["status"], decided["decided_by"]) == ("approved", "alice") and decided["decided_at"]
    assert frames[-1]["run"]["status"] == "succeeded"
    assert reply_of(frames) == "The e-mail was sent."
    sent = mails(mail_dir)
    assert len(sent) == 1 and "To: bob@example.com" in sent[0] and "see you at noon" in sent[0]
    assert alice.request("GET", "/api/approvals/?status=pending").json()["results"] == []
    assert database.query("SELECT status FROM agent_toolexecution") == [("succeeded",)]


async def test_reject_never_runs_the_tool_and_the_model_says_so(mail_server, mail_dir):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        frames = await decide(ws, approval, "reject", comment="not today")
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert (decided["status"], decided["comment"]) == ("rejected", "not today")
    assert reply_of(frames) == "The user rejected the send_email call, so I did not do it."
    tool_message = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "tool"][0]
    assert tool_message["content"] == "Rejected by the user. not today"
    assert mails(mail_dir) == []


async def test_edit_runs_with_the_edited_arguments_and_keeps_both(mail_server, mail_dir):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "edit",
                        "args": {"to": "not an address", "subject": "Lunch", "body": "x"}})
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "bad_request") and "to" in error["message"]
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "edit", "args": "nope"})
        assert (await receive(ws))["code"] == "bad_request"
        edited = {"to": "carol@example.com", "subject": "Lunch moved", "body": "see you at one"}
        frames = await decide(ws, approval, "edit", args=edited)
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert decided["status"] == "edited"
    assert decided["args"]["to"] == "bob@example.com" and decided["edited_args"] == edited
    sent = mails(mail_dir)
    assert len(sent) == 1 and "To: carol@example.com" in sent[0] and "see you at one" in sent[0]
    assert reply_of(frames) == "The e-mail was sent."


async def test_two_simultaneous_decisions_one_wins_one_conflicts(mail_server, mail_dir):
    server = mail_server().start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as first, alice.websocket(conversation["id"]) as second:
        await receive(first)
        await receive(second)
        approval, _ = await ask(first, EMAIL)
        await receive_until(second, until_waiting)
        decision = {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"}
        await asyncio.gather(send(first, decision), send(second, {**decision, "decision": "reject"}))
        frames = {
            name: await receive_until(ws, run_ended)
            for name, ws in (("first", first), ("second", second))
        }
    errors = [f for fs in frames.values() for f in fs if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["conflict"]
    decided = [f["approval"]["status"] for f in frames["first"] if f["type"] == "approval"]
    assert len(decided) == 1 and decided[0] in {"approved", "rejected"}
    assert len(mails(mail_dir)) == (1 if decided[0] == "approved" else 0)
    assert frames["first"][-1]["run"]["status"] == "succeeded"


async def test_another_user_cannot_see_or_decide_the_approval(mail_server, mail_dir, database):
    server = mail_server().start()
    alice, bob = Session(server, "alice"), Session(server, "bob")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
    assert bob.request("GET", "/api/approvals/?status=all").json()["results"] == []
    assert bob.request("GET", f"/api/conversations/{conversation['id']}/export?format=json").status_code == 404
    bobs = bob.create_conversation()
    async with bob.websocket(bobs["id"]) as ws:
        await receive(ws)
        for decision in ("approve", "reject"):
            await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": decision})
            assert (await receive(ws))["code"] == "not_found"
    assert database.query("SELECT status FROM conversations_approval") == [("pending",)]
    assert mails(mail_dir) == []


async def test_bad_decisions_change_nothing(mail_server, database):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        for frame, code in [
            ({"approval_id": approval["id"], "decision": "maybe"}, "bad_request"),
            ({"approval_id": approval["id"]}, "bad_request"),
            ({"approval_id": 5, "decision": "approve"}, "bad_request"),
            ({"approval_id": "unknown", "decision": "approve"}, "not_found"),
            ({"approval_id": approval["id"], "decision": "reject", "comment": "x" * 2001}, "bad_request"),
        ]:
            await send(ws, {"type": "approval.decide", **frame})
            assert (await receive(ws))["code"] == code, frame
    assert database.query("SELECT status FROM conversations_approval") == [("pending",)]
    assert database.query("SELECT status FROM conversations_run") == [("waiting",)]


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
    await wait_for_run_status(database, "succeeded")
    assert len(mails(mail_dir)) == 1
    messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
    assert messages[-1]["content"].startswith("I cannot tell whether the send_email call took effect")
    assert database.query("SELECT status FROM agent_toolexecution") == [("unknown",)]


class Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


async def test_http_post_reaches_only_allowed_hosts(make_server):
    Webhook.received = []
    port = free_port()
    hook = ThreadingHTTPServer(("127.0.0.1", port), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        server = make_server(WEBHOOK_ALLOWED_HOSTS=f"127.0.0.1:{port}", TOOLS_REQUIRING_APPROVAL="send_email,http_post").start()
        alice = Session(server, "alice")
        conversation = alice.create_conversation()
        async with alice.websocket(conversation["id"]) as ws:
            await receive(ws)
            approval, _ = await ask(ws, f'post http://127.0.0.1:{port}/hook {{"event": "ping"}}')
            frames = await decide(ws, approval, "approve")
            assert Webhook.received == [{"event": "ping"}]
            assert "HTTP 200" in [f for f in frames if f["type"] == "tool" and f["status"] == "succeeded"][0]["result"]

            other = free_port()  # nothing listens there; the refusal must come first anyway
            approval, _ = await ask(ws, f'post http://localhost:{other}/hook {{"event": "no"}}')
            frames = await decide(ws, approval, "approve")
        failed = [f for f in frames if f["type"] == "tool" and f["status"] == "failed"][0]
        assert "not in WEBHOOK_ALLOWED_HOSTS" in failed["result"]
        assert reply_of(frames).startswith("The http_post call failed")
        assert Webhook.received == [{"event": "ping"}]
    finally:
        hook.shutdown()


async def test_several_tool_calls_each_get_an_approval_and_the_run_waits_for_all(mail_server, mail_dir, database):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send",
                        "content": "email a@example.com A: one\nemail b@example.com B: two\ntask plan the week"})
        frames = await receive_until(ws, until_waiting)
        first, second = [f["approval"] for f in frames if f["type"] == "approval"]
        assert {first["args"]["to"], second["args"]["to"]} == {"a@example.com", "b@example.com"}

        await send(ws, {"type": "approval.decide", "approval_id": first["id"], "decision": "approve"})
        decided = await receive(ws)
        assert decided["type"] == "approval" and decided["approval"]["status"] == "approved"
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"  # no run frame: it waits for the second decision
        assert mails(mail_dir) == []
        assert database.query("SELECT status FROM conversations_run") == [("waiting",)]

        frames = await decide(ws, second, "reject")
    assert frames[-1]["run"]["status"] == "succeeded"
    sent = mails(mail_dir)
    assert len(sent) == 1 and f"To: {first['args']['to']}" in sent[0]
    assert database.count("agent_task") == 1
    assert reply_of(frames).count("The e-mail was sent.") == 1 and "rejected" in reply_of(frames)


async def test_a_message_sent_while_waiting_runs_after_the_decision(mail_server, mail_dir):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        await send(ws, {"type": "message.send", "content": "and then this"})
        queued = await receive_until(ws, lambda f: f["type"] == "run" and f["run"]["status"] == "queued")
        await send(ws, {"type": "ping"})
        await receive_until(ws, lambda f: f["type"] == "pong")  # nothing ran meanwhile
        second_run = queued[-1]["run"]["id"]
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
        frames = await receive_until(
            ws, lambda f: f["type"] == "run" and f["run"]["id"] == second_run and f["run"]["status"] == "succeeded"
        )
    finished = [f["run"]["id"] for f in frames if f["type"] == "run" and f["run"]["status"] == "succeeded"]
    assert finished == [approval["run_id"], second_run]
    replies = [f["message"]["content"] for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant" and f["message"]["content"]]
    assert replies == ["The e-mail was sent.", 'You said: "and then this"']
    assert len(mails(mail_dir)) == 1


async def test_stopping_a_waiting_run_rejects_its_approvals(mail_server, mail_dir, database):
    alice = Session(mail_server().start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        approval, _ = await ask(ws, EMAIL)
        await send(ws, {"type": "run.cancel"})
        frames = await receive_until(ws, run_ended)
        assert frames[-1]["run"]["status"] == "cancelled"
        rejected = [f["approval"] for f in frames if f["type"] == "approval"][0]
        assert (rejected["status"], rejected["decided_by"]) == ("rejected", "alice")
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
        assert (await receive(ws))["code"] == "conflict"
        await send(ws, {"type": "message.send", "content": "next"})
        frames = await receive_until(ws, run_ended)
    assert frames[-1]["run"]["status"] == "succeeded"
    assert mails(mail_dir) == []


async def test_create_task_needs_no_approval_and_the_user_sees_the_task(mail_server, database):
    server = mail_server().start()
    alice, bob = Session(server, "alice"), Session(server, "bob")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "task water the plants"})
        frames = await receive_until(ws, run_ended)
    assert not [f for f in frames if f["type"] == "approval"]
    assert reply_of(frames) == "The task was created."
    tasks = alice.request("GET", "/api/tasks/").json()["results"]
    assert [(t["title"], t["conversation_id"]) for t in tasks] == [("water the plants", conversation["id"])]
    assert "water the plants" in alice.request("GET", "/tasks/").text
    assert bob.request("GET", "/api/tasks/").json()["results"] == []
    assert "water the plants" not in bob.request("GET", "/tasks/").text


async def test_the_approval_policy_comes_from_settings(mail_server, mail_dir):
    server = mail_server(TOOLS_REQUIRING_APPROVAL="create_task").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": EMAIL})
        frames = await receive_until(ws, run_ended)
        assert not [f for f in frames if f["type"] == "approval"] and len(mails(mail_dir)) == 1
        approval, _ = await ask(ws, "task needs a yes now")
    assert approval["tool"] == "create_task"

"""Tool approvals over the websocket: approve, reject, edit, races, isolation.
(Approvals across a killed server process: tests/fault/test_approval_restarts.py.)"""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.models import Task, ToolExecution
from conversations.models import Approval, Run
from conversations.orm import to_async
from tests.live import free_port
from tests.support.frames import EMAIL, reply_of, until_waiting
from tests.support.in_process import ask, browser, decide, run_ended, statuses
from tests.support.mail import mails

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("mail_to_files")]


async def alice_chatting(people):
    """Alice, her browser, and a socket on a new conversation of hers."""
    alice = await people("alice")
    return alice, await browser(alice), await alice.open((await alice.conversation()).id)


async def test_approve_sends_once_and_the_record_keeps_who_and_when(people, mail_dir):
    alice, alice_http, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    assert approval["tool"] == "send_email" and approval["status"] == "pending"
    assert approval["args"] == {"to": "bob@example.com", "subject": "Lunch", "body": "see you at noon"}
    assert approval["description"] == "Send an e-mail to bob@example.com with the subject “Lunch”"
    assert approval["allowed"] == ["approve", "reject", "edit"]
    assert mails(mail_dir) == []
    listed = (await alice_http.request("GET", "/api/approvals/?status=pending")).json()["results"]
    assert [a["id"] for a in listed] == [approval["id"]]
    assert (await alice_http.request("GET", "/api/conversations/")).json()["results"][0]["pending_approvals"] == 1

    frames = await decide(socket, approval, "approve")
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert (decided["status"], decided["decided_by"]) == ("approved", "alice") and decided["decided_at"]
    assert frames[-1]["run"]["status"] == "succeeded"
    assert reply_of(frames) == "The e-mail was sent."
    sent = mails(mail_dir)
    assert len(sent) == 1 and "To: bob@example.com" in sent[0] and "see you at noon" in sent[0]
    assert (await alice_http.request("GET", "/api/approvals/?status=pending")).json()["results"] == []
    assert await statuses(ToolExecution) == [("succeeded",)]


async def test_reject_never_runs_the_tool_and_the_model_says_so(people, mail_dir):
    _, _, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    frames = await decide(socket, approval, "reject", comment="not today")
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert (decided["status"], decided["comment"]) == ("rejected", "not today")
    assert reply_of(frames) == "The user rejected the send_email call, so I did not do it."
    tool_message = [f["message"] for f in frames if f["type"] == "message" and f["message"]["role"] == "tool"][0]
    assert tool_message["content"] == "Rejected by the user. not today"
    assert mails(mail_dir) == []


async def test_edit_runs_with_the_edited_arguments_and_keeps_both(people, mail_dir):
    _, _, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "edit",
                       "args": {"to": "not an address", "subject": "Lunch", "body": "x"}})
    error = await socket.receive()
    assert (error["type"], error["code"]) == ("error", "bad_request") and "to" in error["message"]
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "edit", "args": "nope"})
    assert (await socket.receive())["code"] == "bad_request"
    edited = {"to": "carol@example.com", "subject": "Lunch moved", "body": "see you at one"}
    frames = await decide(socket, approval, "edit", args=edited)
    decided = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert decided["status"] == "edited"
    assert decided["args"]["to"] == "bob@example.com" and decided["edited_args"] == edited
    sent = mails(mail_dir)
    assert len(sent) == 1 and "To: carol@example.com" in sent[0] and "see you at one" in sent[0]
    assert reply_of(frames) == "The e-mail was sent."


async def test_two_simultaneous_decisions_one_wins_one_conflicts(people, mail_dir):
    alice = await people("alice")
    conversation = await alice.conversation()
    first, second = await alice.open(conversation.id), await alice.open(conversation.id)
    approval, _ = await ask(first, EMAIL)
    await second.receive_until(until_waiting)
    decision = {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"}
    await asyncio.gather(first.send(decision), second.send({**decision, "decision": "reject"}))
    frames = {"first": await first.receive_until(run_ended), "second": await second.receive_until(run_ended)}
    errors = [f for fs in frames.values() for f in fs if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["conflict"]
    decided = [f["approval"]["status"] for f in frames["first"] if f["type"] == "approval"]
    assert len(decided) == 1 and decided[0] in {"approved", "rejected"}
    assert len(mails(mail_dir)) == (1 if decided[0] == "approved" else 0)
    assert frames["first"][-1]["run"]["status"] == "succeeded"


async def test_another_user_cannot_see_or_decide_the_approval(people, mail_dir):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    approval, _ = await ask(socket, EMAIL)
    await socket.close()
    bob = await people("bob")
    bob_http = await browser(bob)
    assert (await bob_http.request("GET", "/api/approvals/?status=all")).json()["results"] == []
    export = await bob_http.request("GET", f"/api/conversations/{conversation.id}/export?format=json")
    assert export.status_code == 404
    bobs = await bob.open((await bob.conversation()).id)
    for decision in ("approve", "reject"):
        await bobs.send({"type": "approval.decide", "approval_id": approval["id"], "decision": decision})
        assert (await bobs.receive())["code"] == "not_found"
    assert await statuses(Approval) == [("pending",)]
    assert mails(mail_dir) == []


async def test_bad_decisions_change_nothing(people):
    _, _, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    for frame, code in [
        ({"approval_id": approval["id"], "decision": "maybe"}, "bad_request"),
        ({"approval_id": approval["id"]}, "bad_request"),
        ({"approval_id": 5, "decision": "approve"}, "bad_request"),
        ({"approval_id": "unknown", "decision": "approve"}, "not_found"),
        ({"approval_id": approval["id"], "decision": "reject", "comment": "x" * 2001}, "bad_request"),
    ]:
        await socket.send({"type": "approval.decide", **frame})
        assert (await socket.receive())["code"] == code, frame
    assert await statuses(Approval) == [("pending",)]
    assert await statuses(Run) == [("waiting",)]


class Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


async def test_http_post_reaches_only_allowed_hosts(people, settings):
    Webhook.received = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    port = hook.server_address[1]
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        settings.WEBHOOK_ALLOWED_HOSTS = {f"127.0.0.1:{port}"}
        settings.TOOLS_REQUIRING_APPROVAL = {"send_email", "http_post"}
        _, _, socket = await alice_chatting(people)
        approval, _ = await ask(socket, f'post http://127.0.0.1:{port}/hook {{"event": "ping"}}')
        frames = await decide(socket, approval, "approve")
        assert Webhook.received == [{"event": "ping"}]
        assert "HTTP 200" in [f for f in frames if f["type"] == "tool" and f["status"] == "succeeded"][0]["result"]

        other = free_port()  # nothing listens there; the refusal must come first anyway
        approval, _ = await ask(socket, f'post http://localhost:{other}/hook {{"event": "no"}}')
        frames = await decide(socket, approval, "approve")
        failed = [f for f in frames if f["type"] == "tool" and f["status"] == "failed"][0]
        assert "not in WEBHOOK_ALLOWED_HOSTS" in failed["result"]
        assert reply_of(frames).startswith("The http_post call failed")
        assert Webhook.received == [{"event": "ping"}]
    finally:
        hook.shutdown()


@to_async
def task_count() -> int:
    return Task.objects.count()


async def test_several_tool_calls_each_get_an_approval_and_the_run_waits_for_all(people, mail_dir):
    _, _, socket = await alice_chatting(people)
    await socket.send({"type": "message.send",
                       "content": "email a@example.com A: one\nemail b@example.com B: two\ntask plan the week"})
    frames = await socket.receive_until(until_waiting)
    first, second = [f["approval"] for f in frames if f["type"] == "approval"]
    assert {first["args"]["to"], second["args"]["to"]} == {"a@example.com", "b@example.com"}

    await socket.send({"type": "approval.decide", "approval_id": first["id"], "decision": "approve"})
    decided = await socket.receive()
    assert decided["type"] == "approval" and decided["approval"]["status"] == "approved"
    await socket.send({"type": "ping"})
    assert (await socket.receive())["type"] == "pong"  # no run frame: it waits for the second decision
    assert mails(mail_dir) == []
    assert await statuses(Run) == [("waiting",)]

    frames = await decide(socket, second, "reject")
    assert frames[-1]["run"]["status"] == "succeeded"
    sent = mails(mail_dir)
    assert len(sent) == 1 and f"To: {first['args']['to']}" in sent[0]
    assert await task_count() == 1
    assert reply_of(frames).count("The e-mail was sent.") == 1 and "rejected" in reply_of(frames)


async def test_a_message_sent_while_waiting_runs_after_the_decision(people, mail_dir):
    _, _, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    await socket.send({"type": "message.send", "content": "and then this"})
    queued = await socket.receive_until(lambda f: f["type"] == "run" and f["run"]["status"] == "queued")
    await socket.send({"type": "ping"})
    await socket.receive_until(lambda f: f["type"] == "pong")  # nothing ran meanwhile
    second_run = queued[-1]["run"]["id"]
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
    frames = await socket.receive_until(
        lambda f: f["type"] == "run" and f["run"]["id"] == second_run and f["run"]["status"] == "succeeded"
    )
    finished = [f["run"]["id"] for f in frames if f["type"] == "run" and f["run"]["status"] == "succeeded"]
    assert finished == [approval["run_id"], second_run]
    replies = [f["message"]["content"] for f in frames
               if f["type"] == "message" and f["message"]["role"] == "assistant" and f["message"]["content"]]
    assert replies == ["The e-mail was sent.", 'You said: "and then this"']
    assert len(mails(mail_dir)) == 1


async def test_stopping_a_waiting_run_rejects_its_approvals(people, mail_dir):
    _, _, socket = await alice_chatting(people)
    approval, _ = await ask(socket, EMAIL)
    await socket.send({"type": "run.cancel"})
    frames = await socket.receive_until(run_ended)
    assert frames[-1]["run"]["status"] == "cancelled"
    rejected = [f["approval"] for f in frames if f["type"] == "approval"][0]
    assert (rejected["status"], rejected["decided_by"]) == ("rejected", "alice")
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
    assert (await socket.receive())["code"] == "conflict"
    frames = await socket.chat("next")
    assert frames[-1]["run"]["status"] == "succeeded"
    assert mails(mail_dir) == []


async def test_create_task_needs_no_approval_and_the_user_sees_the_task(people):
    alice = await people("alice")
    alice_http, bob_http = await browser(alice), await browser(await people("bob"))
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    frames = await socket.chat("task water the plants")
    assert not [f for f in frames if f["type"] == "approval"]
    assert reply_of(frames) == "The task was created."
    tasks = (await alice_http.request("GET", "/api/tasks/")).json()["results"]
    assert [(t["title"], t["conversation_id"]) for t in tasks] == [("water the plants", str(conversation.id))]
    assert b"water the plants" in (await alice_http.request("GET", "/tasks/")).content
    assert (await bob_http.request("GET", "/api/tasks/")).json()["results"] == []
    assert b"water the plants" not in (await bob_http.request("GET", "/tasks/")).content


async def test_the_approval_policy_comes_from_settings(people, mail_dir, settings):
    settings.TOOLS_REQUIRING_APPROVAL = {"create_task"}
    _, _, socket = await alice_chatting(people)
    frames = await socket.chat(EMAIL)
    assert not [f for f in frames if f["type"] == "approval"] and len(mails(mail_dir)) == 1
    approval, _ = await ask(socket, "task needs a yes now")
    assert approval["tool"] == "create_task"

"""How runs end when they do not succeed.

A run stopped, failed, or cancelled before it started rejects its pending approvals in
the transaction that ends it, and each goes to the conversation's sockets: deciding one
afterwards is a conflict, so the record never says a tool was approved that never ran.

A run whose conversation is deleted stops, and what it wrote after the delete is
removed when it does: no checkpoint row is left, and no error is logged.
"""

import asyncio
import json
import logging

import pytest
from django.contrib.auth.models import User
from langchain_core.messages import AIMessage
from langgraph.types import Interrupt

from agent import ledger
from agent.context import RunGone
from agent.graph import MODEL_NODE
from agent.tools import TOOLS
from conversations import exports, orm, signals
from conversations.errors import Conflict, NotFound
from conversations.models import Approval, Conversation, Run
from conversations.runs import transitions
from conversations.runs.executor import RunExecutor
from conversations.runs.transcript import chat_context
from conversations.services import approvals as approval_services
from conversations.services.approvals import aapproval_create, aapproval_decide, approval_create, approval_decide
from conversations.services.conversations import aconversation_delete, conversation_create, conversation_delete
from conversations.services.turns import amessage_send, message_send
from tests.support.executor import GraphThatEndsAtOnce, attempt_tasks, send, watching
from tests.support.in_process import checkpoint_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("orm_threads_disconnect_after")]

REQUEST = {
    "tool_call_id": "call-1",
    "tool": "send_email",
    "args": {"to": "bob@example.com", "subject": "Hi", "body": "hello"},
    "description": "Send an e-mail to bob@example.com with the subject “Hi”",
    "allowed": ["approve", "reject", "edit"],
}


class GraphThatAsks(GraphThatEndsAtOnce):
    """The model called a tool that needs approval: the card is out, and the run is
    still running (it has not reached `waiting`). Then `then` happens."""

    def __init__(self, then):
        self.asked = asyncio.Event()
        self.then = then

    async def astream(self, *args, **kwargs):
        call = {"id": REQUEST["tool_call_id"], "name": REQUEST["tool"], "args": REQUEST["args"]}
        yield "updates", {MODEL_NODE: {"messages": [AIMessage(content="", tool_calls=[call], id="the-call")]}}
        yield "updates", {"__interrupt__": (Interrupt(value=REQUEST, id="interrupt-1"),)}
        self.asked.set()
        await self.then()


async def hang():
    await asyncio.sleep(60)


async def fail():
    raise RuntimeError("the model server went away")


@orm.to_async
def alice_and_her_conversation() -> tuple[User, Conversation]:
    user = User.objects.create_user("alice")
    return user, conversation_create(user=user)


@orm.to_async
def stored_approval() -> Approval:
    return Approval.objects.select_related("conversation").get()


async def frames_until_the_run_ended(receive) -> list[dict]:
    frames = []
    while not frames or not (frames[-1]["type"] == "run" and frames[-1]["run"]["status"] not in Run.ACTIVE):
        frames += [json.loads(text) for text in (await asyncio.wait_for(receive(), 10))["texts"]]
    return frames


async def assert_settled(frames, user, owner: str, reason: str) -> None:
    approval = await stored_approval()
    assert (approval.status, approval.comment, approval.decided_by_id) == ("rejected", reason, None)
    assert approval.decided_at is not None
    # The card, then its settling in the run's last step: open pages update.
    cards = [(f["approval"]["id"], f["approval"]["status"]) for f in frames if f["type"] == "approval"]
    assert cards == [(approval.id, "pending"), (approval.id, "rejected")]
    assert [f["type"] for f in frames[-2:]] == ["approval", "run"]
    with pytest.raises(Conflict):
        await aapproval_decide(user=user, approval_id=approval.id, decision="approve", owner=owner)
    assert (await stored_approval()).status == "rejected"
    # The export records the decision no one made as what it was.
    markdown, _, _ = await orm.to_async(exports.export_conversation)(conversation=approval.conversation, kind="markdown")
    assert f"{REQUEST['description']} — rejected at {approval.decided_at.isoformat()}: “{reason}”" in markdown


async def test_stop_just_after_the_approval_card_appears_rejects_it(settings):
    settings.CHECKPOINTS_KEPT = 0
    graph = GraphThatAsks(then=hang)
    executor = RunExecutor(graph)
    user, conversation = await alice_and_her_conversation()
    async with watching(conversation) as receive:
        run = await send(executor, conversation)
        await asyncio.wait_for(graph.asked.wait(), 10)
        assert run.status == Run.Status.RUNNING  # Stop takes the path of a running run
        await executor.request_cancel(run, user=user)
        frames = await frames_until_the_run_ended(receive)
    assert frames[-1]["run"]["status"] == "cancelled"
    await assert_settled(frames, user, executor.owner, "The run was stopped.")


async def test_a_run_that_fails_rejects_its_pending_approvals(settings):
    settings.CHECKPOINTS_KEPT = 0
    executor = RunExecutor(GraphThatAsks(then=fail))
    user, conversation = await alice_and_her_conversation()
    async with watching(conversation) as receive:
        await send(executor, conversation)
        frames = await frames_until_the_run_ended(receive)
    assert frames[-1]["run"]["status"] == "failed"
    await assert_settled(frames, user, executor.owner, "The run failed.")


async def test_cancelling_a_queued_run_settles_an_approval_it_holds():
    """No path leaves a queued run with a pending approval today; its end settles one all
    the same, as every end but success does."""
    executor = RunExecutor(GraphThatEndsAtOnce())
    user, conversation = await alice_and_her_conversation()
    for content in ("first", "second"):  # the first is running (not executed here): the second waits
        queued = (await amessage_send(
            conversation=conversation, content=content, client_id=None, owner=executor.owner
        )).run
    await aapproval_create(
        interrupt_id="interrupt-1", run_id=queued.id, conversation_id=conversation.id, request=REQUEST
    )
    async with watching(conversation) as receive:
        await executor.request_cancel(queued, user=user)
        frames = [json.loads(text) for text in (await asyncio.wait_for(receive(), 10))["texts"]]
    assert [(f["type"], f.get("approval", f.get("run"))["status"]) for f in frames] == [
        ("approval", "rejected"), ("run", "cancelled")
    ]
    assert (await stored_approval()).comment == "The run was stopped."


# ----------------------------------------------------------------- deleted mid-run


@orm.to_async
def run_writes_to_a_deleted_conversation(write: str):
    """One of the writes a run makes, after its conversation was deleted."""
    user = User.objects.create_user("alice")
    conversation = conversation_create(user=user)
    run = message_send(conversation=conversation, content="hi", client_id=None, owner="me").run
    conversation_delete(conversation=conversation)
    fields = {"run_id": run.id}
    if write == "message":
        transitions.message_store(message_id=run.id, conversation_id=conversation.id, branch_id=None, role="assistant",
                               content="hello", turn_at=run.created_at, **fields)
    elif write == "approval":
        approval_create(interrupt_id="i", conversation_id=conversation.id, request=REQUEST, **fields)
    elif write == "wait":
        transitions.run_wait(**fields)
    elif write == "end":
        transitions.run_finish(status=Run.Status.SUCCEEDED, **fields)
    else:
        context = chat_context(conversation_id=str(conversation.id), user_id=user.id, run_id=str(run.id), branch_id=None,
                               turn_at=run.created_at, model="offline")
        ledger.run_tool_once(tool=TOOLS["current_time"], args={}, tool_call_id="call-1", run_id=str(run.id),
                             context=context)


@pytest.mark.parametrize("write", ["message", "approval", "wait", "end", "tool"])
async def test_a_runs_writes_after_its_conversation_was_deleted_say_so(write):
    with pytest.raises(RunGone):
        await run_writes_to_a_deleted_conversation(write)


@orm.to_async
def decide_and_stop_after_the_delete(monkeypatch):
    """A decision and a Stop that read their approval and run just before the delete."""
    user = User.objects.create_user("alice")
    conversation = conversation_create(user=user)
    run = message_send(conversation=conversation, content="hi", client_id=None, owner="me").run
    approval = approval_create(interrupt_id="i", run_id=run.id, conversation_id=conversation.id, request=REQUEST)
    conversation_delete(conversation=conversation)
    monkeypatch.setattr(approval_services, "approval_for_user", lambda **fields: approval)
    with pytest.raises(NotFound):
        approval_decide(user=user, approval_id=approval.id, decision="approve", owner="me")
    assert transitions.run_cancel(run_id=run.id, seen=Run.Status.WAITING, user=user) is None


async def test_a_decision_or_a_stop_read_before_the_delete_finds_nothing_to_change(monkeypatch):
    await decide_and_stop_after_the_delete(monkeypatch)


def tokens_until(receive, word: str):
    async def wait():
        while True:
            for text in (await receive())["texts"]:
                frame = json.loads(text)
                if frame["type"] == "token" and word in frame["delta"]:
                    return

    return asyncio.wait_for(wait(), 30)


async def delete_mid_reply(executor, words: int) -> tuple[Conversation, Run, float]:
    """Send `slow <words>` and delete the conversation once the reply streams; wait for the
    run to stop. The conversation, the run, and the seconds from the delete to the stop."""
    _, conversation = await alice_and_her_conversation()
    async with watching(conversation) as receive:
        accepted = await amessage_send(
            conversation=conversation, content=f"slow {words}", client_id=None, owner=executor.owner
        )
        run = accepted.run
        executor.submit(run, started=accepted.started)
        await tokens_until(receive, "tick5")
        assert await checkpoint_rows(conversation.id) > 0
        deleted = asyncio.get_running_loop().time()
        await aconversation_delete(conversation=conversation)
        await asyncio.wait_for(asyncio.gather(*attempt_tasks(executor)), 30)
    return conversation, run, asyncio.get_running_loop().time() - deleted


async def test_a_run_deleted_mid_reply_stops_and_leaves_no_checkpoint_row(agent_runtime, caplog):
    caplog.set_level(logging.INFO)
    conversation, run, stopped_after = await delete_mid_reply(agent_runtime.executor, 2000)
    assert stopped_after < 3  # stopped, not left to write 2,000 words
    assert await checkpoint_rows(conversation.id) == 0
    assert f"run {run.id} stopped: its conversation was deleted" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_what_a_run_writes_after_the_delete_goes_when_it_ends(agent_runtime, monkeypatch, caplog):
    """The stop comes too late: the run finishes its reply after the delete, writing the
    model step's checkpoint; its end, finding the run gone, removes it."""

    async def too_late(run_id):
        pass

    monkeypatch.setattr(signals, "arun_stop_request", too_late)
    found_at_the_end = []
    delete_thread = agent_runtime.saver.adelete_thread

    async def counted(thread_id):
        found_at_the_end.append(await checkpoint_rows(thread_id))
        return await delete_thread(thread_id)

    monkeypatch.setattr(agent_runtime.saver, "adelete_thread", counted)
    conversation, _, _ = await delete_mid_reply(agent_runtime.executor, 40)
    assert found_at_the_end[0] > 0  # written after the delete
    assert await checkpoint_rows(conversation.id) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

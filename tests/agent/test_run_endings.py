"""How runs end when they do not succeed.

A run stopped, failed, or cancelled before it started rejects its pending approvals in
the transaction that ends it, and each goes to the conversation's sockets: deciding one
afterwards is a conflict, so the record never says a tool was approved that never ran.
"""

import asyncio
import json

import pytest
from django.contrib.auth.models import User
from langchain_core.messages import AIMessage
from langgraph.types import Interrupt

from agent.executor import RunExecutor
from agent.graph import MODEL_NODE
from conversations import exports, orm, services
from conversations.models import Approval, Conversation, Run
from tests.agent.test_executor import GraphThatEndsAtOnce, send, watching
from tests.support.in_process import orm_threads_disconnect_after  # noqa: F401 (a fixture)

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
    return user, services.conversation_create(user=user)


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
    with pytest.raises(services.Conflict):
        await services.aapproval_decide(user=user, approval_id=approval.id, decision="approve", owner=owner)
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
        _, queued, _ = await services.amessage_send(
            conversation=conversation, content=content, client_id=None, owner=executor.owner
        )
    await services.aapproval_create(
        interrupt_id="interrupt-1", run_id=queued.id, conversation_id=conversation.id, request=REQUEST
    )
    async with watching(conversation) as receive:
        await executor.request_cancel(queued, user=user)
        frames = [json.loads(text) for text in (await asyncio.wait_for(receive(), 10))["texts"]]
    assert [(f["type"], f.get("approval", f.get("run"))["status"]) for f in frames] == [
        ("approval", "rejected"), ("run", "cancelled")
    ]
    assert (await stored_approval()).comment == "The run was stopped."

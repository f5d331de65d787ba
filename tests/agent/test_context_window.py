"""What the model is given of a conversation: whole turns in the order they were
accepted, each as the messages it was (tool calls with one result each), within a token
budget cut between turns, with a summary of the turns that no longer fit."""

import uuid

import pytest
from django.contrib.auth.models import User
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.context import ChatContext
from agent.context_window import fold_into_summary, window_for
from agent.llm import chat_model
from agent.prompts import NOT_RUN, SUMMARY_HEADING
from conversations import orm
from conversations.models import Message, Run, Summary
from conversations.runs import transitions
from conversations.runs.transcript import chat_context
from conversations.selectors.messages import message_list
from conversations.services.conversations import conversation_create
from conversations.services.turns import message_send

pytestmark = pytest.mark.django_db(transaction=True)


@orm.to_async
def new_conversation():
    return conversation_create(user=User.objects.create_user(f"u{uuid.uuid4().hex[:8]}"))


@orm.to_async
def send(conversation, content: str):
    accepted = message_send(conversation=conversation, content=content, client_id=None, owner="test")
    return accepted.message, accepted.run


@orm.to_async
def reply(message, run, content: str = "", *, tool_calls=(), results=(), status=Run.Status.SUCCEEDED):
    """Store what a run wrote: an assistant message (with tool calls), tool results, and end it."""
    common = {"conversation_id": run.conversation_id, "run_id": run.id, "branch_id": run.branch_id,
              "turn_at": message.turn_at}
    if content or tool_calls:
        transitions.message_store(message_id=uuid.uuid4(), role=Message.Role.ASSISTANT, content=content,
                                  tool_calls=list(tool_calls), **common)
    for call_id, text in results:
        transitions.message_store(message_id=uuid.uuid4(), role=Message.Role.TOOL, content=text, tool_call_id=call_id,
                                  tool_name="send_email", **common)
    transitions.run_finish(run_id=run.id, status=status)


def context_for(message, run, model="offline") -> ChatContext:
    return chat_context(conversation_id=str(run.conversation_id), user_id=1, run_id=str(run.id), branch_id=None,
                        turn_at=message.turn_at, model=model)


def said(messages) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in messages]


async def test_a_queued_message_sees_the_whole_turn_ahead_of_it_and_is_shown_after_it():
    conversation = await new_conversation()
    first, run1 = await send(conversation, "my name is Zed")
    await reply(first, run1, "Hello Zed")
    slow, run2 = await send(conversation, "slow 15")
    # Sent while `slow 15` is being answered: queued, created before that reply.
    question, run3 = await send(conversation, "what is my name?")
    await reply(slow, run2, "tick1 tick2")

    current = [HumanMessage(question.content)]
    window = await window_for(context_for(question, run3), current, chat_model("offline"))
    assert said(window.messages[1:]) == [
        ("human", "my name is Zed"), ("ai", "Hello Zed"), ("human", "slow 15"), ("ai", "tick1 tick2"),
        ("human", "what is my name?"),
    ]
    shown = await orm.to_async(message_list)(conversation=conversation)
    assert [m.message.content for m in shown] == ["my name is Zed", "Hello Zed", "slow 15", "tick1 tick2", "what is my name?"]


async def test_earlier_tool_calls_come_with_one_result_each():
    conversation = await new_conversation()
    message, run = await send(conversation, "email a@b.c Hi: x\nemail d@e.f Hi: y")
    calls = [{"id": "call_a", "name": "send_email", "args": {"to": "a@b.c"}},
             {"id": "call_d", "name": "send_email", "args": {"to": "d@e.f"}}]
    # The first was sent; the run was stopped before the second ran.
    await reply(message, run, "", tool_calls=calls, results=[("call_a", "E-mail sent to a@b.c.")],
                status=Run.Status.CANCELLED)
    later, run2 = await send(conversation, "what did you send?")

    window = await window_for(context_for(later, run2), [HumanMessage(later.content)], chat_model("offline"))
    _, user, assistant, result_a, result_d, question = window.messages
    assert isinstance(assistant, AIMessage) and [c["id"] for c in assistant.tool_calls] == ["call_a", "call_d"]
    assert isinstance(result_a, ToolMessage) and (result_a.tool_call_id, result_a.text) == ("call_a", "E-mail sent to a@b.c.")
    assert isinstance(result_d, ToolMessage) and (result_d.tool_call_id, result_d.text) == ("call_d", NOT_RUN)
    assert question.text == "what did you send?"


async def test_roles_alternate_for_providers_and_the_system_prompt_comes_once(settings):
    settings.CHAT_MODELS = ["offline", "openai:local"]
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    conversation = await new_conversation()
    failed, run1 = await send(conversation, "first, which failed")
    await reply(failed, run1, status=Run.Status.FAILED)
    message, run2 = await send(conversation, "second")
    current = [HumanMessage(message.content)]

    merged = await window_for(context_for(message, run2, "openai:local"), current, chat_model("openai:local"))
    assert [m.type for m in merged.messages] == ["system", "human"]
    assert merged.messages[1].text == "first, which failed\nsecond"
    as_sent = await window_for(context_for(message, run2), current, chat_model("offline"))
    assert [m.type for m in as_sent.messages] == ["system", "human", "human"]
    assert sum(isinstance(m, SystemMessage) for m in as_sent.messages) == 1


async def test_turns_that_no_longer_fit_are_summarized_and_the_rest_kept_whole(settings):
    settings.CHAT_CONTEXT_TOKENS = 1200
    settings.CHAT_MAX_OUTPUT_TOKENS = settings.CHAT_REPLY_ROOM_TOKENS = 200
    conversation = await new_conversation()
    for index in range(30):
        message, run = await send(conversation, f"fact number {index}: " + "word " * 20)
        await reply(message, run, f"noted {index}")
    message, run = await send(conversation, "recall")
    context, current, model = context_for(message, run), [HumanMessage("recall")], chat_model("offline")

    window = await window_for(context, current, model)
    assert window.fold and window.fold[0].rows[0].content.startswith("fact number 0:")
    folded = 0
    while window.fold:  # the graph's summarize step, as often as the model step asks for it
        folded += len(window.fold)
        await fold_into_summary(context, model, window)
        window = await window_for(context, current, model)
    summary = await Summary.objects.alatest("through_turn_at")
    # The offline model's summary keeps the latest user messages that fit its length.
    assert summary.turns == folded and f"fact number {folded - 1}:" in summary.content

    system, *rest = window.messages
    assert SUMMARY_HEADING in system.text and summary.content in system.text
    # Cut only between turns: it starts with a user message and each turn is whole.
    assert isinstance(rest[0], HumanMessage) and rest[-1].text == "recall"
    kept = [m.text for m in rest if isinstance(m, HumanMessage)][:-1]
    assert kept == [f"fact number {i}: " + "word " * 20 for i in range(folded, 30)]
    assert [m.text for m in rest if isinstance(m, AIMessage)] == [f"noted {i}" for i in range(folded, 30)]

"""The offline model follows PROTOCOL.md's rules and streams a word at a time."""

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.llm import OfflineChatModel, get_chat_model
from agent.tools import TOOLS, current_time

def model():
    return OfflineChatModel(delay_ms=0)


async def reply(messages, tools=()):
    chunks = [chunk async for chunk in (model().bind_tools(list(tools)) if tools else model()).astream(messages)]
    return chunks, sum(chunks[1:], chunks[0])


async def test_slow_streams_exactly_n_words():
    chunks, message = await reply([HumanMessage("SLOW 7")])
    assert message.content == "tick1 tick2 tick3 tick4 tick5 tick6 tick7"
    assert [c.content for c in chunks if c.content] == ["tick1"] + [f" tick{i}" for i in range(2, 8)]


async def test_recall_lists_earlier_user_messages_in_order():
    history = [HumanMessage("one"), AIMessage("ok"), HumanMessage("two"), AIMessage("ok"), HumanMessage("recall")]
    _, message = await reply(history)
    assert message.content == "one\ntwo"


async def test_anything_else_contains_the_message_verbatim():
    _, message = await reply([HumanMessage("Hello, *world*!")])
    assert "Hello, *world*!" in message.content


async def test_tools_are_called_only_when_bound():
    _, message = await reply([HumanMessage("what time is it?")], tools=TOOLS)
    assert [call["name"] for call in message.tool_calls] == ["current_time"]
    _, unbound = await reply([HumanMessage("email bob@example.com Hi: there")], tools=TOOLS)
    assert unbound.tool_calls == [] and "email bob@example.com Hi: there" in unbound.content


async def test_after_a_tool_result_it_states_the_outcome():
    call = {"name": "current_time", "args": {}, "id": "call_1"}
    _, message = await reply(
        [HumanMessage("time"), AIMessage("", tool_calls=[call]), ToolMessage("12:00", tool_call_id="call_1", name="current_time")],
        tools=[current_time],
    )
    assert message.tool_calls == [] and "succeeded" in message.content and "12:00" in message.content


def test_chat_model_setting(settings):
    settings.CHAT_MODEL = "offline"
    assert isinstance(get_chat_model(), OfflineChatModel)
    settings.CHAT_MODEL = "openai:gpt-4o-mini"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    openai_model = get_chat_model()
    assert openai_model.model_name == "gpt-4o-mini" and str(openai_model.openai_api_base) == "http://127.0.0.1:9/v1"
    settings.CHAT_MODEL = "nonsense"
    with pytest.raises(ValueError):
        get_chat_model()

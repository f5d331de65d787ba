"""The offline model follows PROTOCOL.md's rules and streams a word at a time."""

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.llm import OfflineChatModel, get_chat_model
from agent.tools import TOOLS

ALL_TOOLS = [tool.as_openai_tool() for tool in TOOLS.values()]
CLOCK_ONLY = [TOOLS["current_time"].as_openai_tool()]

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
    _, message = await reply([HumanMessage("what time is it?")], tools=CLOCK_ONLY)
    assert [call["name"] for call in message.tool_calls] == ["current_time"]
    _, unbound = await reply([HumanMessage("email bob@example.com Hi: there")], tools=CLOCK_ONLY)
    assert unbound.tool_calls == [] and "email bob@example.com Hi: there" in unbound.content


async def test_after_a_tool_result_it_states_the_outcome():
    call = {"name": "current_time", "args": {}, "id": "call_1"}
    _, message = await reply(
        [HumanMessage("time"), AIMessage("", tool_calls=[call]), ToolMessage("12:00", tool_call_id="call_1", name="current_time")],
        tools=CLOCK_ONLY,
    )
    assert message.tool_calls == [] and "succeeded" in message.content and "12:00" in message.content


async def test_one_command_per_line_makes_several_tool_calls():
    text = "email a@example.com One: first\ntask water the plants\npost https://hooks.example/x {\"a\": 1}"
    _, message = await reply([HumanMessage(text)], tools=ALL_TOOLS)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("send_email", {"to": "a@example.com", "subject": "One", "body": "first"}),
        ("create_task", {"title": "water the plants"}),
        ("http_post", {"url": "https://hooks.example/x", "json": {"a": 1}}),
    ]
    _, mixed = await reply([HumanMessage("hello there\ntask one")], tools=ALL_TOOLS)
    assert mixed.tool_calls == []


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

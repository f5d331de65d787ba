"""The offline model follows docs/protocol.md's rules and streams a word at a time."""

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.context_window import summary_request
from agent.llm import OpenAICompatibleChat, UnknownModel, build_chat_model
from agent.offline import MAX_SLOW_WORDS, OfflineChatModel
from agent.prompts import SUMMARY_HEADING, SYSTEM_PROMPT
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


def test_models_by_name(settings):
    assert isinstance(build_chat_model("offline"), OfflineChatModel)
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    openai_model = build_chat_model("openai:gpt-4o-mini")
    assert isinstance(openai_model, OpenAICompatibleChat)
    assert openai_model.model_name == "gpt-4o-mini" and str(openai_model.openai_api_base) == "http://127.0.0.1:9/v1"
    assert openai_model.max_retries == 0 and openai_model.stream_usage
    for name in ("nonsense", "openai:", "no-such-provider:model"):
        with pytest.raises(UnknownModel):
            build_chat_model(name)


async def test_a_reply_ends_with_its_finish_reason_and_usage():
    chunks, message = await reply([HumanMessage("slow 3")])
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata["output_tokens"] == 3 and message.usage_metadata["input_tokens"] > 0
    _, call = await reply([HumanMessage("time")], tools=CLOCK_ONLY)
    assert call.response_metadata["finish_reason"] == "tool_calls"


async def test_the_output_limit_cuts_the_reply_off():
    chunks = [c async for c in OfflineChatModel(delay_ms=0, max_tokens=4).astream([HumanMessage("slow 10")])]
    message = sum(chunks[1:], chunks[0])
    assert message.content == "tick1 tick2 tick3 tick4" and message.response_metadata["finish_reason"] == "length"


async def test_slow_with_thousands_of_digits_is_the_largest_reply_not_an_error():
    model = OfflineChatModel(delay_ms=0, max_tokens=5)
    chunks = [c async for c in model.astream([HumanMessage("slow " + "9" * 5000)])]
    message = sum(chunks[1:], chunks[0])
    assert message.content == "tick1 tick2 tick3 tick4 tick5" and MAX_SLOW_WORDS > 5


async def test_it_summarizes_deterministically_and_recall_reads_the_summary():
    class Turn:  # as context_window's turns: messages only
        def __init__(self, *messages):
            self.messages = list(messages)

    turns = [Turn(HumanMessage("my name is Zed"), AIMessage("Hello Zed")), Turn(HumanMessage("I like tea"), AIMessage("ok"))]
    request = summary_request(None, turns, words=50)
    _, first = await reply(request)
    _, again = await reply(request)
    assert first.content == again.content == "- The user said: my name is Zed\n- The user said: I like tea"

    _, short = await reply(summary_request(None, turns, words=7))
    assert short.content == "- The user said: I like tea"

    system = SystemMessage(f"{SYSTEM_PROMPT}\n\n{SUMMARY_HEADING}\n{first.content}")
    _, recalled = await reply([system, HumanMessage("later"), AIMessage("ok"), HumanMessage("recall")])
    assert recalled.content == "my name is Zed\nI like tea\nlater"

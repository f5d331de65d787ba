"""The OpenAI stand-in, driven by the real clients: the openai SDK and langchain_openai.

A test passes when the clients parse what the server sends as they would parse OpenAI's
(or vLLM's, Ollama's, Azure's) answer: same message, tool calls, usage, exception class.
"""

import json
import threading
import time

import httpx
import openai
import pytest
from langchain_core.exceptions import ContextOverflowError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.support.openai_server import (
    NOT_ALTERNATING,
    TOOL_WITHOUT_CALL,
    Call,
    ContextTooLong,
    Drop,
    Error,
    Hang,
    OpenAIServer,
    Stall,
    Text,
    ToolCalls,
    after_tool,
    any_request,
    last_user,
    last_user_contains,
    roles,
)

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def shared_server():
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared_strict_server():
    with OpenAIServer(strict=True) as server:
        yield server


@pytest.fixture
def server(shared_server):
    shared_server.reset()
    return shared_server


@pytest.fixture
def strict_server(shared_strict_server):
    shared_strict_server.reset()
    return shared_strict_server


def sdk(server: OpenAIServer, **options) -> openai.AsyncOpenAI:
    """An SDK client of the server. verify=False (the server is plain HTTP) spares
    loading the CA bundle, a tenth of a second a client; the same in chat_model."""
    http_client = openai.DefaultAsyncHttpxClient(verify=False)
    settings = {"api_key": KEY, "max_retries": 0} | options
    return openai.AsyncOpenAI(base_url=server.base_url, http_client=http_client, **settings)


def chat_model(server: OpenAIServer, **options) -> ChatOpenAI:
    # Own HTTP clients: by default langchain_openai shares cached ones across event loops,
    # and each test has its own loop.
    settings = {
        "streaming": True,
        "stream_usage": True,
        "http_client": openai.DefaultHttpxClient(verify=False),
        "http_async_client": openai.DefaultAsyncHttpxClient(verify=False),
    } | options
    return ChatOpenAI(model="gpt-test", base_url=server.base_url, api_key=KEY, max_retries=0, **settings)


async def stream_message(model: ChatOpenAI, messages) -> AIMessage:
    """astream's chunks added up, as LangGraph does."""
    total = None
    async for chunk in model.astream(messages):
        total = chunk if total is None else total + chunk
    return total


def sse_events(text: str) -> list[str]:
    """The data payloads of an SSE body; asserts every event is exactly `data: …\\n\\n`."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(event.startswith("data: ") and "\n" not in event for event in events)
    return [event[len("data: ") :] for event in events]


def post_chat(server: OpenAIServer, body: dict, **headers) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers, timeout=10, verify=False)


# --- Streams -------------------------------------------------------------------------


async def test_text_stream_reassembles_exactly(server):
    answer = "Bonjour ! Ça va très bien, merci. 🎉\nLine two."
    server.on(last_user("hello"), Text(answer, chunk_size=3))
    message = await stream_message(chat_model(server), [HumanMessage("hello")])
    assert message.content == answer
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == "gpt-test"


def test_stream_is_openai_wire_format(server):
    server.on(any_request(), Text("abcdefgh", chunk_size=4))
    body = {"model": "gpt-x", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    response = post_chat(server, body)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-request-id"].startswith("req_")

    *payloads, done = sse_events(response.text)
    assert done == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads]
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("chatcmpl-")
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == "gpt-x"
        assert chunk["system_fingerprint"].startswith("fp_") and isinstance(chunk["created"], int)
        assert "usage" in chunk
    with_choices, usage_chunk = chunks[:-1], chunks[-1]
    for chunk in with_choices:
        assert chunk["usage"] is None
        assert list(chunk["choices"][0]) == ["index", "delta", "logprobs", "finish_reason"]
    deltas = [(chunk["choices"][0]["delta"], chunk["choices"][0]["finish_reason"]) for chunk in with_choices]
    assert deltas == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": "abcd"}, None),
        ({"content": "efgh"}, None),
        ({}, "stop"),
    ]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0


def test_without_include_usage_no_usage_field_and_no_usage_chunk(server):
    response = post_chat(server, {"model": "m", "messages": HELLO, "stream": True})
    chunks = [json.loads(payload) for payload in sse_events(response.text)[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_usage_arrives_as_langchain_usage_metadata(server):
    server.on(any_request(), Text("The answer.", reasoning="Let me think.", usage={"prompt_tokens": 42}))
    message = await stream_message(chat_model(server), [HumanMessage("hello")])
    usage = message.usage_metadata
    assert usage["input_tokens"] == 42
    assert usage["output_tokens"] == 3 + 4  # "The answer." and "Let me think." at ~4 characters a token
    assert usage["total_tokens"] == 42 + 7
    assert usage["output_token_details"]["reasoning"] == 4
    assert usage["input_token_details"]["cache_read"] == 0


async def test_usage_override_keeps_an_explicit_total(server):
    server.on(any_request(), Text("x", usage={"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 100}))
    message = await stream_message(chat_model(server), [HumanMessage("hello")])
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["total_tokens"]) == (5, 100)


async def test_first_chunk_without_choices_is_tolerated(server):
    server.on(any_request(), Text("filtered fine", no_choices_first=True), Text("again", no_choices_first=True))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices == [] and chunks[0].model_extra["prompt_filter_results"]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[1:]) == "filtered fine"
    message = await stream_message(chat_model(server), [HumanMessage("hello")])
    assert message.content == "again"


async def test_delay_spaces_the_chunks(server):
    server.on(any_request(), Text("abcdef", chunk_size=2, delay=0.05))
    async with sdk(server) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "abcdef"
    assert time.monotonic() - started >= 0.05 * 5  # a pause before each event but the first of 6


# --- Reasoning -----------------------------------------------------------------------


async def test_reasoning_content_deltas_reach_the_sdk_but_not_langchain(server):
    server.on(any_request(), Text("Paris.", reasoning="The capital of France is Paris."))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        deltas = [chunk.choices[0].delta async for chunk in stream]
    reasoning = "".join((delta.model_extra or {}).get("reasoning_content", "") for delta in deltas)
    assert reasoning == "The capital of France is Paris."
    assert "".join(delta.content or "" for delta in deltas) == "Paris."

    # langchain_openai's ChatOpenAI reads only role/content/function_call/tool_calls of a
    # delta (_convert_delta_to_message_chunk): the reasoning is dropped.
    server.on(any_request(), Text("Paris.", reasoning="The capital of France is Paris."))
    message = await stream_message(chat_model(server), [HumanMessage("hello")])
    assert message.content == "Paris."
    assert "reasoning_content" not in message.additional_kwargs
    assert not [block for block in message.content_blocks if block["type"] == "reasoning"]


async def test_reasoning_field_can_be_vllm_and_ollama_reasoning(server):
    server.on(any_request(), Text("ok", reasoning="hmm", reasoning_field="reasoning"))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        deltas = [chunk.choices[0].delta async for chunk in stream]
    assert "".join((delta.model_extra or {}).get("reasoning", "") for delta in deltas) == "hmm"


async def test_think_tags_arrive_in_content_with_the_tags_split(server):
    server.on(any_request(), Text("42", reasoning="6 times 7", think_tags=True, chunk_size=50))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices[0].delta.content]
    assert "".join(pieces) == "<think>6 times 7</think>42"
    assert not [piece for piece in pieces if "<think>" in piece or "</think>" in piece]


async def test_non_streaming_answer_carries_reasoning_and_usage(server):
    server.on(any_request(), Text("Paris.", reasoning="France..."))
    async with sdk(server) as client:
        completion = await client.chat.completions.create(model="gpt-x", messages=HELLO)
    assert completion.object == "chat.completion" and completion.model == "gpt-x"
    assert completion.choices[0].message.content == "Paris."
    assert completion.choices[0].message.model_extra["reasoning_content"] == "France..."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3


# --- Tool calls ----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["split", "ollama"])
async def test_tool_calls_parse_into_langchain_tool_calls(server, style):
    calls = [Call("get_weather", {"city": "Paris", "unit": "C"}, id="call_one"), Call("get_time", {"tz": "CET"})]
    server.on(any_request(), ToolCalls(calls, style=style))
    message = await stream_message(chat_model(server), [HumanMessage("weather and time?")])
    assert [(call["name"], call["args"]) for call in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "unit": "C"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert message.tool_calls[0]["id"] == "call_one" and message.tool_calls[1]["id"].startswith("call_")
    assert message.invalid_tool_calls == []
    assert message.response_metadata["finish_reason"] == "tool_calls"


async def test_split_style_streams_arguments_in_small_pieces(server):
    server.on(any_request(), ToolCalls([Call("search", {"query": "long enough to split"})]))
    async with sdk(server) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        deltas = [chunk.choices[0].delta async for chunk in stream]
    assert deltas[0].role == "assistant" and deltas[0].content is None
    header = deltas[1].tool_calls[0]
    assert (header.index, header.type, header.function.name, header.function.arguments) == (0, "function", "search", "")
    pieces = [delta.tool_calls[0].function.arguments for delta in deltas[2:] if delta.tool_calls]
    assert len(pieces) > 3 and all(len(piece) <= 4 for piece in pieces)
    assert json.loads("".join(pieces)) == {"query": "long enough to split"}


async def test_content_before_tool_calls(server):
    server.on(any_request(), ToolCalls([Call("lookup", {"q": "x"})], content="Let me check."))
    message = await stream_message(chat_model(server), [HumanMessage("q")])
    assert message.content == "Let me check." and message.tool_calls[0]["name"] == "lookup"


async def test_invalid_json_arguments_land_in_invalid_tool_calls(server):
    server.on(any_request(), ToolCalls([Call("broken", '{"city": Paris}')]))
    message = await stream_message(chat_model(server), [HumanMessage("q")])
    assert message.tool_calls == []
    assert [(call["name"], call["args"]) for call in message.invalid_tool_calls] == [("broken", '{"city": Paris}')]


async def test_finish_reason_length_with_cut_off_arguments(server):
    server.on(any_request(), ToolCalls([Call("write", '{"text": "a long essay that was cu')], finish_reason="length"))
    message = await stream_message(chat_model(server), [HumanMessage("q")])
    assert message.response_metadata["finish_reason"] == "length"
    # langchain_core parses streamed arguments as partial JSON: the cut-off call comes out
    # valid, with truncated args. Only finish_reason tells.
    assert message.tool_calls[0]["args"] == {"text": "a long essay that was cu"}
    assert message.invalid_tool_calls == []


async def test_non_streaming_tool_calls(server):
    server.on(any_request(), ToolCalls([Call("f", {"a": 1}, id="call_f")]))
    message = await chat_model(server, streaming=False).ainvoke([HumanMessage("q")])
    assert message.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "call_f", "type": "tool_call"}]
    assert message.usage_metadata["output_tokens"] > 0


# --- A whole tool loop through langchain, strict mode ----------------------------------


async def test_tool_loop_in_strict_mode(strict_server):
    strict_server.on(last_user("weather?"), ToolCalls([Call("get_weather", {"city": "Paris"})]))
    strict_server.on(after_tool("get_weather"), Text("Sunny in Paris."))
    model = chat_model(strict_server)
    history = [SystemMessage("Be brief."), HumanMessage("weather?")]
    called = await stream_message(model, history)
    history += [called, ToolMessage("22 C, sunny", tool_call_id=called.tool_calls[0]["id"])]
    answered = await stream_message(model, history)
    history += [answered, HumanMessage("thanks")]
    echoed = await stream_message(model, history)
    assert (answered.content, echoed.content) == ("Sunny in Paris.", "Echo: thanks")
    assert roles(strict_server.chat_requests()[-1]) == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert [recorded.status for recorded in strict_server.requests] == [200, 200, 200]


# --- Scripting -----------------------------------------------------------------------


async def test_rules_are_consumed_in_order_then_fall_through(server):
    server.on(last_user_contains("hi"), Text("first"), Text("second"))
    server.on(any_request(), Text("fallback"))
    model = chat_model(server)
    answers = [(await stream_message(model, [HumanMessage("hi there")])).content for _ in range(4)]
    assert answers == ["first", "second", "fallback", "Echo: hi there"]


async def test_matchers_read_text_parts_and_tool_names(server):
    server.on(last_user("look"), Text("matched parts"))
    server.on(after_tool("other"), Text("wrong tool"))
    server.on(after_tool("search"), Text("after search"))
    server.on(lambda body: body.get("temperature") == 0.5, Text("by callable"))
    parts = [{"role": "user", "content": [{"type": "text", "text": "  lo"}, {"type": "text", "text": "ok \n"}]}]
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    after_search = HELLO + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "result"},
    ]
    async with sdk(server) as client:
        texts = [
            (await client.chat.completions.create(model="m", messages=messages, **extra)).choices[0].message.content
            for messages, extra in [(parts, {}), (after_search, {}), (HELLO, {"temperature": 0.5})]
        ]
    assert texts == ["matched parts", "after search", "by callable"]


async def test_default_replies_echo_and_acknowledge_tool_results(server):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    after_tool_result = HELLO + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x" * 300},
    ]
    async with sdk(server) as client:
        echo = await client.chat.completions.create(model="m", messages=HELLO)
        done = await client.chat.completions.create(model="m", messages=after_tool_result)
    assert echo.choices[0].message.content == "Echo: hello"
    assert done.choices[0].message.content == "Done: " + "x" * 200


def test_record_and_reset(server):
    post_chat(server, {"model": "m", "messages": HELLO}, Authorization="Bearer sk-1")
    httpx.get(f"{server.base_url}/models", verify=False)
    recorded = server.wait_for_requests(2)
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/models", 200),
    ]
    assert recorded[0].headers["authorization"] == "Bearer sk-1" and recorded[0].body["model"] == "m"
    assert server.chat_requests() == [{"model": "m", "messages": HELLO}]
    server.on(any_request(), Text("scripted"))
    server.reset()
    assert server.requests == []
    assert post_chat(server, {"model": "m", "messages": HELLO}).json()["choices"][0]["message"]["content"] == "Echo: hello"


def test_wait_for_requests_times_out(server):
    with pytest.raises(TimeoutError):
        server.wait_for_requests(1, timeout=0.05)


def test_models_and_unknown_paths(server):
    models = httpx.get(f"{server.base_url}/models", verify=False).json()
    assert models["object"] == "list" and models["data"][0]["id"] == "gpt-4o-mini"
    missing = httpx.post(f"{server.base_url}/completion", json={}, verify=False)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/completion)"


# --- Errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "exception", "code"),
    [
        (Error(400), openai.BadRequestError, None),
        (Error(401), openai.AuthenticationError, "invalid_api_key"),
        (Error(404), openai.NotFoundError, "model_not_found"),
        (Error(429, headers={"Retry-After": "1"}), openai.RateLimitError, "rate_limit_exceeded"),
        (Error(500), openai.InternalServerError, None),
        (Error(503), openai.InternalServerError, None),
        (ContextTooLong(8192, 9000), openai.BadRequestError, "context_length_exceeded"),
    ],
)
async def test_errors_map_to_the_sdk_exceptions(server, response, exception, code):
    server.on(any_request(), response)
    async with sdk(server) as client:
        with pytest.raises(exception) as raised:
            await client.chat.completions.create(model="gpt-x", messages=HELLO, stream=True)
    assert raised.value.status_code == response.status and raised.value.code == code
    assert raised.value.request_id.startswith("req_")
    assert server.requests[-1].status == response.status


async def test_error_texts_are_openais(server):
    server.on(any_request(), Error(404), Error(429, headers={"Retry-After": "1"}), ContextTooLong(8192, 9000))
    async with sdk(server) as client:
        raised = []
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as error:
                await client.chat.completions.create(model="gpt-x", messages=HELLO)
            raised.append(error.value)
    not_found, rate_limited, too_long = raised
    assert not_found.message.endswith("The model `gpt-x` does not exist or you do not have access to it.")
    assert rate_limited.body["message"].startswith("Rate limit reached for gpt-x in organization")
    assert rate_limited.body["type"] == "tokens"
    assert rate_limited.response.headers["retry-after"] == "1"
    assert too_long.body == {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in "
        "9000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }


async def test_context_too_long_through_langchain(server):
    server.on(any_request(), ContextTooLong())
    with pytest.raises(openai.BadRequestError) as raised:
        await stream_message(chat_model(server), [HumanMessage("hello")])
    assert raised.value.code == "context_length_exceeded"
    # langchain_openai looks for "context_length_exceeded" in str(error) to raise its
    # ContextOverflowError, but openai 3.x puts only the message in str(error).
    assert not isinstance(raised.value, ContextOverflowError)


async def test_gateway_html_502(server):
    server.on(any_request(), Error(502, html=True))
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert raised.value.status_code == 502
    assert raised.value.response.headers["content-type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in raised.value.response.text


async def test_error_message_can_echo_the_authorization_header(server):
    server.on(any_request(), Error(400, message="bad request from {authorization}"))
    async with sdk(server) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert raised.value.body["message"] == f"bad request from Bearer {KEY}"


async def test_wrong_and_missing_api_key():
    with OpenAIServer(api_key=KEY) as server:
        async with sdk(server, api_key="sk-wrong-0123456789xyz") as client:
            with pytest.raises(openai.AuthenticationError) as raised:
                await client.chat.completions.create(model="m", messages=HELLO)
        assert raised.value.body == {
            "message": "Incorrect API key provided: sk-wrong**********9xyz. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        anonymous = post_chat(server, {"model": "m", "messages": HELLO})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["message"].startswith("You didn't provide an API key.")
        async with sdk(server) as client:
            completion = await client.chat.completions.create(model="m", messages=HELLO)
        assert completion.choices[0].message.content == "Echo: hello"
        assert [recorded.status for recorded in server.requests] == [401, 401, 200]


# --- Broken connections --------------------------------------------------------------


async def test_hang_gives_the_sdk_a_timeout(server):
    server.on(any_request(), Hang())
    async with sdk(server, timeout=0.5) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert server.requests[-1].status == 0


async def test_stall_times_out_after_some_chunks(server):
    server.on(any_request(), Stall(Text("partial answer", chunk_size=4), after_chunks=3))
    received = []
    async with sdk(server, timeout=1) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        with pytest.raises(openai.APITimeoutError):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
    assert received == ["", "part", "ial "]


async def test_stall_with_keepalives_only_trips_langchains_chunk_timeout(server):
    # The keepalive bytes reset the HTTP read timeout (5 s): only the timeout between
    # parsed chunks fires.
    server.on(any_request(), Stall(Text("partial answer"), after_chunks=2, keepalive=0.05))
    model = chat_model(server, timeout=5, stream_chunk_timeout=0.5)
    received = []
    with pytest.raises(TimeoutError, match="stream_chunk_timeout"):
        async for chunk in model.astream([HumanMessage("hello")]):
            received.append(chunk.content)
    assert "".join(received) == "part"


async def test_drop_breaks_the_stream_mid_body(server):
    server.on(any_request(), Drop(Text("partial answer", chunk_size=4), after_chunks=3))
    received = []
    async with sdk(server, timeout=5) as client:
        stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
        with pytest.raises(openai.APIConnectionError) as raised:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
    assert not isinstance(raised.value, openai.APITimeoutError)
    assert received == ["", "part", "ial "]


async def test_drop_reaches_langchain_as_a_connection_error(server):
    server.on(any_request(), Drop(Text("partial answer"), after_chunks=2))
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in chat_model(server, timeout=5).astream([HumanMessage("hello")]):
            received.append(chunk.content)
    assert "".join(received) == "part"


async def test_drop_and_stall_without_streaming(server):
    server.on(any_request(), Drop(Text("whole"), after_chunks=1), Stall(Text("whole"), after_chunks=0))
    async with sdk(server, timeout=5) as client:
        with pytest.raises(openai.APIConnectionError) as dropped:
            await client.chat.completions.create(model="m", messages=HELLO)
    assert not isinstance(dropped.value, openai.APITimeoutError)
    async with sdk(server, timeout=0.5) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=HELLO)


def test_stop_returns_quickly_while_a_request_hangs():
    server = OpenAIServer().start()
    server.on(any_request(), Hang())
    outcome = []

    def hanging_client():
        try:
            outcome.append(post_chat(server, {"model": "m", "messages": HELLO, "stream": True}))
        except httpx.HTTPError as error:
            outcome.append(error)

    client = threading.Thread(target=hanging_client)
    client.start()
    server.wait_for_requests(1)
    asked = time.monotonic()
    server.stop()
    assert time.monotonic() - asked < 3
    client.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.RemoteProtocolError)


# --- Validation ----------------------------------------------------------------------

CALL = {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def rejection(server: OpenAIServer, body: dict) -> dict:
    response = post_chat(server, body)
    assert response.status_code == 400, response.text
    assert server.requests[-1].status == 400
    return response.json()["error"]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
async def test_orphan_tool_call_is_rejected_with_openais_text(server, strict_server, strict):
    messages = HELLO + [{"role": "assistant", "content": None, "tool_calls": [CALL]}, {"role": "user", "content": "?"}]
    async with sdk(strict_server if strict else server) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="m", messages=messages)
    assert raised.value.body == {
        "message": "An assistant message with 'tool_calls' must be followed by tool messages responding to "
        "each 'tool_call_id'. The following tool_call_ids did not have response messages: call_a",
        "type": "invalid_request_error",
        "param": "messages.[1].role",
        "code": None,
    }


def test_unanswered_parallel_call_at_the_end_is_rejected(server):
    second = CALL | {"id": "call_b"}
    messages = HELLO + [
        {"role": "assistant", "content": None, "tool_calls": [CALL, second]},
        {"role": "tool", "tool_call_id": "call_b", "content": "ok"},
    ]
    assert rejection(server, {"model": "m", "messages": messages})["message"].endswith("messages: call_a")


def test_tool_message_without_a_call_is_rejected(server):
    messages = HELLO + [{"role": "tool", "tool_call_id": "call_a", "content": "result"}]
    error = rejection(server, {"model": "m", "messages": messages})
    assert (error["message"], error["param"]) == (TOOL_WITHOUT_CALL, "messages.[1].role")


def test_tool_message_answering_an_earlier_block_is_rejected(server):
    messages = HELLO + [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_a", "content": "result"},
        {"role": "assistant", "content": "done"},
        {"role": "tool", "tool_call_id": "call_a", "content": "again"},
    ]
    assert rejection(server, {"model": "m", "messages": messages})["param"] == "messages.[4].role"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "b"}],
        [{"role": "user", "content": "a"}, {"role": "system", "content": "late system"}],
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "no user yet"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}],
    ],
    ids=["user-user", "assistant-first", "late-system", "system-assistant", "assistant-assistant"],
)
async def test_non_alternating_roles_are_rejected_only_in_strict_mode(server, strict_server, messages):
    assert post_chat(server, {"model": "m", "messages": messages}).status_code == 200
    async with sdk(strict_server) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="m", messages=messages)
    # vLLM's body for an exception from the chat template.
    assert raised.value.body == {"message": NOT_ALTERNATING, "type": "BadRequestError", "param": None, "code": 400}


def test_correct_tool_sequence_is_accepted_in_strict_mode(strict_server):
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL, CALL | {"id": "call_b"}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_a", "content": "22 C"},
        {"role": "assistant", "content": "Sunny, 22 C."},
        {"role": "user", "content": "thanks"},
    ]
    assert post_chat(strict_server, {"model": "m", "messages": messages}).status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "message_start"),
    [
        ({"messages": HELLO}, None, "you must provide a model parameter"),
        ({"model": "m"}, "messages", "Missing required parameter: 'messages'."),
        ({"model": "m", "messages": []}, "messages", "Invalid 'messages': empty array."),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role", "Invalid value: 'bot'."),
        ({"model": "m", "messages": [{"role": "user", "content": None}]}, "messages[0].content", "Invalid value for 'content'"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content", "Invalid type for"),
        ({"model": "m", "messages": [{"role": "assistant", "content": None}]}, "messages[0].content", "Invalid value for"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages.[0].tool_call_id", "Missing parameter"),
        (
            {"model": "m", "messages": HELLO + [{"role": "assistant", "tool_calls": [CALL | {"type": "custom"}]}]},
            "messages[1].tool_calls[0].type",
            "Invalid value: 'custom'.",
        ),
        (
            {"model": "m", "messages": HELLO + [{"role": "assistant", "tool_calls": [CALL | {"function": {"name": "f", "arguments": {}}}]}]},
            "messages[1].tool_calls[0].function.arguments",
            "Invalid type for",
        ),
        (
            {"model": "m", "messages": HELLO + [{"role": "assistant", "tool_calls": [CALL, CALL]}]},
            "messages[1].tool_calls[1].id",
            "Duplicate value for 'tool_call_id' of call_a",
        ),
        (
            {"model": "m", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "has space"}}]},
            "tools[0].function.name",
            "Invalid 'tools[0].function.name': string does not match pattern.",
        ),
        (
            {"model": "m", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "n" * 65}}]},
            "tools[0].function.name",
            "Invalid 'tools[0].function.name': string too long.",
        ),
        (
            {"model": "m", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools[0].function.parameters",
            "Invalid schema for function 'f'",
        ),
        (
            {"model": "m", "messages": HELLO, "stream_options": {"include_usage": True}},
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        ),
        ({"model": "m", "messages": HELLO, "stream": "yes"}, "stream", "Invalid type for 'stream': expected a boolean"),
        ({"model": "m", "messages": HELLO, "max_tokens": 0}, "max_tokens", "Invalid 'max_tokens': integer below minimum value."),
        (
            {"model": "m", "messages": HELLO, "max_tokens": 5, "max_completion_tokens": 5},
            "max_tokens",
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
        ),
    ],
)
def test_invalid_requests_are_rejected_with_the_param_named(server, body, param, message_start):
    error = rejection(server, body)
    assert error["param"] == param and error["message"].startswith(message_start)
    assert error["type"] == "invalid_request_error"


def test_unparsable_json_is_rejected_and_recorded(server):
    response = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json", verify=False)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("We could not parse the JSON body of your request.")
    assert (server.requests[-1].body, server.requests[-1].status) == (None, 400)


async def test_langchain_requests_pass_validation(server):
    """What ChatOpenAI sends for a tool loop with bound tools is valid."""

    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    server.on(last_user("weather?"), ToolCalls([Call("get_weather", {"city": "Paris"})]))
    model = chat_model(server, max_tokens=100).bind_tools([get_weather])
    called = await stream_message(model, [HumanMessage("weather?")])
    tool_result = ToolMessage("sunny", tool_call_id=called.tool_calls[0]["id"])
    answered = await stream_message(model, [HumanMessage("weather?"), called, tool_result])
    assert answered.content == "Done: sunny"
    assert [recorded.status for recorded in server.requests] == [200, 200]
    assert server.chat_requests()[-1]["tools"][0]["function"]["name"] == "get_weather"

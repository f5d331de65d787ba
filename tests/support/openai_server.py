"""A scriptable stand-in for OpenAI's chat-completions API, for tests.

`OpenAIServer` runs an ASGI app on uvicorn, in a thread with its own event loop, on
127.0.0.1 at a free port. Point a client at `server.base_url` (as OPENAI_BASE_URL)
and script what the "model" answers:

    with OpenAIServer(strict=True) as server:
        server.on(last_user("weather?"), ToolCalls([Call("get_weather", {"city": "Paris"})]))
        server.on(after_tool("get_weather"), Text("It is sunny."))
        ...  # drive the app
        assert roles(server.chat_requests()[-1]) == ["user", "assistant", "tool"]

Without a matching rule the server answers like a plain working model: "Done: <tool
result>" after a tool message, else "Echo: <last user text>". Matchers run in the
server's thread; rules and the record are safe to use from any thread.

The wire format follows OpenAI's: SSE events `data: {json}\\n\\n` ending with
`data: [DONE]`, chunk and error shapes as the openai SDK's types and real recordings
show them. Where a behaviour is another provider's (vLLM, Ollama, DeepSeek, Azure),
the code says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import socket
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from http import HTTPStatus
from typing import Any

import uvicorn

__all__ = [
    "Call",
    "ContextTooLong",
    "Drop",
    "Error",
    "Hang",
    "OpenAIServer",
    "Recorded",
    "Stall",
    "Text",
    "ToolCalls",
    "after_tool",
    "any_request",
    "last_user",
    "last_user_contains",
    "roles",
]


# --- Scripted responses ------------------------------------------------------------


@dataclass
class Text:
    """A text answer, optionally preceded by reasoning.

    `reasoning` goes out as `reasoning_field` deltas: "reasoning_content" is DeepSeek's
    name and older vLLM's; current vLLM (since late 2025), Ollama and OpenRouter name it
    "reasoning". With `think_tags` the reasoning is put in the content instead, as
    "<think>…</think>" before the answer (what a model served without a reasoning parser
    emits), with chunk boundaries inside both tags.
    `no_choices_first` starts the stream with Azure's content-filter chunk, which has
    `"choices": []` and empty id/model/object.
    `delay` is the pause between stream chunks (once, before answering, when stream=false).
    `usage` entries replace the computed usage entries."""

    content: str
    _: KW_ONLY
    reasoning: str | None = None
    think_tags: bool = False
    chunk_size: int = 4
    finish_reason: str = "stop"
    delay: float = 0.0
    usage: dict | None = None
    no_choices_first: bool = False
    reasoning_field: str = "reasoning_content"

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")


@dataclass
class Call:
    """One tool call. A dict `arguments` is JSON-encoded; a str is sent as is, so
    invalid or cut-off JSON can be scripted. `id` defaults to a fresh "call_…"."""

    name: str
    arguments: dict | str
    id: str | None = None


@dataclass
class ToolCalls:
    """An answer calling tools (several calls: parallel tool calls), after optional
    `content`. style "split" streams as OpenAI does: per call, a chunk with id, type,
    name and empty arguments, then the arguments a few characters per chunk. style
    "ollama" sends every complete call in one chunk, as Ollama's OpenAI endpoint does.
    finish_reason "length" scripts an answer cut off by the output limit. A Call
    without an id gets a new one in each answer."""

    calls: list[Call]
    _: KW_ONLY
    content: str = ""
    style: str = "split"
    finish_reason: str = "tool_calls"
    delay: float = 0.0
    usage: dict | None = None

    def __post_init__(self):
        if self.style not in ("split", "ollama"):
            raise ValueError(f"unknown style {self.style!r}: 'split' or 'ollama'")


@dataclass
class Error:
    """An error answer, sent before any stream starts, in OpenAI's error JSON
    {"error": {"message", "type", "param", "code"}}. Unset message/type/code take
    OpenAI's values for the status (`param` stays null unless set). "{authorization}"
    in `message` is replaced by the request's Authorization header (a gateway that
    echoes the key). `html` sends an nginx error page as text/html instead (`message`,
    if set, replaces the page)."""

    status: int
    _: KW_ONLY
    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] | None = None
    html: bool = False


@dataclass
class Hang:
    """Accepts the request and sends nothing, not even the status line, until the
    client disconnects or the server stops. Recorded with status 0."""


@dataclass
class Stall:
    """Sends the first `after_chunks` SSE events of `response` (the status line and
    headers always), then keeps the connection open, silent, until the client
    disconnects or the server stops. With `keepalive` (seconds) it sends an SSE comment
    ": keepalive" at that interval meanwhile: bytes that reset an HTTP read timeout
    but carry no chunk. With stream=false the body counts as one chunk:
    after_chunks=0 sends the headers only, more sends half the body."""

    response: Text | ToolCalls
    after_chunks: int
    _: KW_ONLY
    keepalive: float | None = None


@dataclass
class Drop:
    """Sends the first `after_chunks` SSE events of `response`, then closes the
    connection with the chunked body unfinished (no final chunk, no [DONE]), so the
    client's HTTP library raises mid-stream. stream=false: as for Stall."""

    response: Text | ToolCalls
    after_chunks: int


def ContextTooLong(limit: int = 128_000, tokens: int | None = None) -> Error:
    """OpenAI's 400 for a prompt over the context window; `tokens` defaults to limit + 1.
    (Named like the response types it is used among.)"""
    tokens = limit + 1 if tokens is None else tokens
    return Error(
        400,
        message=(
            f"This model's maximum context length is {limit} tokens. However, your messages "
            f"resulted in {tokens} tokens. Please reduce the length of the messages."
        ),
        type="invalid_request_error",
        code="context_length_exceeded",
        param="messages",
    )


Response = Text | ToolCalls | Error | Hang | Stall | Drop
Matcher = Callable[[dict], bool]


# --- Matchers ----------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _last_user_text(body: dict) -> str | None:
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            return _text_of(message.get("content")).strip()
    return None


def last_user(text: str) -> Matcher:
    """Matches when the last user message's text, whitespace-stripped, equals `text`."""
    return lambda body: _last_user_text(body) == text.strip()


def last_user_contains(text: str) -> Matcher:
    """Matches when the last user message's text contains `text`."""
    return lambda body: text in (_last_user_text(body) or "")


def _called_function(messages: list[dict], tool_message: dict) -> str | None:
    """The name of the function a tool message answers, from the assistant's tool_calls."""
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            if call.get("id") == tool_message.get("tool_call_id"):
                return call.get("function", {}).get("name")
    return None


def after_tool(name: str | None = None) -> Matcher:
    """Matches when the last message is a tool result (answering a call to `name`)."""

    def matches(body: dict) -> bool:
        last = body["messages"][-1]
        if last.get("role") != "tool":
            return False
        return name is None or _called_function(body["messages"], last) == name

    return matches


def any_request() -> Matcher:
    """Matches every chat-completions request."""
    return lambda body: True


def roles(body: dict) -> list[str]:
    """The roles of a request body's messages, in order."""
    return [message.get("role") for message in body["messages"]]


def _default_reply(body: dict) -> Text:
    last = body["messages"][-1]
    if last.get("role") == "tool":
        return Text("Done: " + _text_of(last.get("content"))[:200])
    return Text("Echo: " + (_last_user_text(body) or ""))


# --- Record ------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as it arrived. `headers` has lower-case names; `body` is the parsed
    JSON (None when absent or not JSON); `status` is the status answered (0: none, Hang)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    status: int


@dataclass
class _Rule:
    matcher: Matcher
    responses: deque = field(default_factory=deque)


# --- Validation (OpenAI's 400s; texts as OpenAI words them) ---------------------------

ROLES = ("system", "developer", "user", "assistant", "tool")
# OpenAI's content part types per role; the others accept text parts only.
PART_TYPES = {"user": ("text", "image_url", "input_audio", "file"), "assistant": ("text", "refusal")}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
# OpenAI's texts for the tool-call sequence rules ("preceeding" is OpenAI's spelling).
UNANSWERED_CALLS = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
    "each 'tool_call_id'. The following tool_call_ids did not have response messages: {ids}"
)
TOOL_WITHOUT_CALL = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
    "with 'tool_calls'."
)
# The exception the strictest chat templates raise (Mistral's, Gemma's), as vLLM reports it.
NOT_ALTERNATING = "Conversation roles must alternate user/assistant/user/assistant/..."
UNPARSABLE_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)


class _Rejected(Exception):
    """A request answered 400 with this error body."""

    def __init__(self, message, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}


def _type_name(value: Any) -> str:
    """A JSON value's type as OpenAI names it in "expected X, but got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: Any) -> _Rejected:
    return _Rejected(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> _Rejected:
    return _Rejected(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _empty_array(param: str) -> _Rejected:
    return _Rejected(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param,
        "empty_array",
    )


def _invalid_value(param: str, value: Any, supported: tuple[str, ...]) -> _Rejected:
    quoted = [f"'{item}'" for item in supported]
    listed = " and ".join(quoted) if len(quoted) <= 2 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    return _Rejected(f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value")


def _parse_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Rejected(UNPARSABLE_JSON) from None
    if not isinstance(body, dict):
        raise _Rejected(UNPARSABLE_JSON)
    return body


def _validate(body: dict) -> None:
    """Raises _Rejected where OpenAI answers 400."""
    _validate_model(body)
    _validate_messages(body)
    _validate_tool_sequence(body["messages"])
    _validate_tools(body)
    _validate_stream_options(body)
    _validate_max_tokens(body)


def _validate_model(body: dict) -> None:
    model = body.get("model")
    if model is None or model == "":
        raise _Rejected("you must provide a model parameter")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)


def _validate_messages(body: dict) -> None:
    if "messages" not in body:
        raise _missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise _empty_array("messages")
    seen_call_ids: set[str] = set()
    for index, message in enumerate(messages):
        _validate_message(index, message)
        for call_index, call in enumerate(_tool_calls_of(message)):
            if call["id"] in seen_call_ids:
                raise _Rejected(
                    f"Duplicate value for 'tool_call_id' of {call['id']} in message[{index}]. "
                    "Please ensure all tool call IDs are unique.",
                    f"messages[{index}].tool_calls[{call_index}].id",
                )
            seen_call_ids.add(call["id"])


def _tool_calls_of(message: dict) -> list[dict]:
    """An assistant message's tool calls (none for other roles; null counts as none)."""
    return (message.get("tool_calls") or []) if message["role"] == "assistant" else []


def _validate_message(index: int, message: Any) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _wrong_type(where, "an object", message)
    if "role" not in message:
        raise _missing(f"{where}.role")
    role = message["role"]
    if role not in ROLES:
        raise _invalid_value(f"{where}.role", role, ROLES)
    if role == "assistant" and message.get("tool_calls") is not None:
        _validate_tool_calls(where, message["tool_calls"])
    _validate_content(where, role, message)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _Rejected(
            "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
            f"messages.[{index}].tool_call_id",
        )


def _validate_content(where: str, role: str, message: dict) -> None:
    content = message.get("content")
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return  # OpenAI: content is optional when tool_calls is given
        if "content" not in message:
            raise _missing(f"{where}.content")
        raise _Rejected("Invalid value for 'content': expected a string, got null.", f"{where}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _wrong_type(f"{where}.content", "one of a string or array of objects", content)
    if not content:
        raise _empty_array(f"{where}.content")
    for part_index, part in enumerate(content):
        _validate_part(f"{where}.content[{part_index}]", role, part)


def _validate_part(where: str, role: str, part: Any) -> None:
    if not isinstance(part, dict):
        raise _wrong_type(where, "an object", part)
    if "type" not in part:
        raise _missing(f"{where}.type")
    supported = PART_TYPES.get(role, ("text",))
    if part["type"] not in supported:
        raise _invalid_value(f"{where}.type", part["type"], supported)
    if part["type"] == "text" and not isinstance(part.get("text"), str):
        raise _wrong_type(f"{where}.text", "a string", part.get("text"))


def _validate_tool_calls(where: str, tool_calls: Any) -> None:
    if not isinstance(tool_calls, list):
        raise _wrong_type(f"{where}.tool_calls", "an array", tool_calls)
    if not tool_calls:
        raise _empty_array(f"{where}.tool_calls")
    for call_index, call in enumerate(tool_calls):
        path = f"{where}.tool_calls[{call_index}]"
        if not isinstance(call, dict):
            raise _wrong_type(path, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                raise _missing(f"{path}.{key}")
        if not isinstance(call["id"], str) or not call["id"]:
            raise _wrong_type(f"{path}.id", "a non-empty string", call["id"])
        if call["type"] != "function":
            raise _invalid_value(f"{path}.type", call["type"], ("function",))
        function = call["function"]
        if not isinstance(function, dict):
            raise _wrong_type(f"{path}.function", "an object", function)
        for key in ("name", "arguments"):
            if key not in function:
                raise _missing(f"{path}.function.{key}")
            if not isinstance(function[key], str):
                raise _wrong_type(f"{path}.function.{key}", "a string", function[key])


def _validate_tool_sequence(messages: list[dict]) -> None:
    """An assistant's tool_calls must be answered, each, by the tool messages right
    after it; a tool message must answer a call of that assistant message."""
    pending: list[str] = []  # ids of the open block's calls not answered yet
    block_start = None  # index of the assistant message that opened the block
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            if message["tool_call_id"] not in pending:
                raise _Rejected(TOOL_WITHOUT_CALL, f"messages.[{index}].role")
            pending.remove(message["tool_call_id"])
            continue
        _check_answered(pending, block_start)
        pending = [call["id"] for call in _tool_calls_of(message)]
        block_start = index
    _check_answered(pending, block_start)


def _check_answered(pending: list[str], block_start: int | None) -> None:
    if pending:
        raise _Rejected(UNANSWERED_CALLS.format(ids=", ".join(pending)), f"messages.[{block_start}].role")


def _validate_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _wrong_type("tools", "an array", tools)
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise _wrong_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise _invalid_value(f"{where}.type", tool.get("type"), ("function",))
        if not isinstance(tool.get("function"), dict):
            raise _missing(f"{where}.function")
        _validate_function(f"{where}.function", tool["function"])


def _validate_function(where: str, function: dict) -> None:
    name = function.get("name")
    if not isinstance(name, str):
        raise _missing(f"{where}.name")
    if len(name) > 64:
        raise _Rejected(
            f"Invalid '{where}.name': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            f"{where}.name",
            "string_above_max_length",
        )
    if not TOOL_NAME.match(name):
        raise _Rejected(
            f"Invalid '{where}.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{where}.name",
            "invalid_value",
        )
    parameters = function.get("parameters", {"type": "object"})
    if not isinstance(parameters, dict):
        raise _wrong_type(f"{where}.parameters", "an object", parameters)
    if parameters.get("type", "object") != "object":
        raise _Rejected(
            f"Invalid schema for function '{name}': schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: \"{parameters['type']}\"'.",
            f"{where}.parameters",
            "invalid_function_parameters",
        )


def _validate_stream_options(body: dict) -> None:
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _wrong_type("stream", "a boolean", body["stream"])
    if body.get("stream_options") is not None and not body.get("stream"):
        raise _Rejected(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )


def _validate_max_tokens(body: dict) -> None:
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(key, "an integer", value)
        if value < 1:
            raise _Rejected(
                f"Invalid '{key}': integer below minimum value. Expected a value >= 1, "
                f"but got {value} instead.",
                key,
                "integer_below_min_value",
            )
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise _Rejected(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "max_tokens",
            "invalid_parameter_combination",
        )


def _validate_alternation(messages: list[dict]) -> None:
    """strict=True: the role order the strictest chat templates accept, else vLLM's 400."""
    previous = None
    for index, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            allowed = index == 0
        elif role == "user":
            allowed = previous in (None, "system", "developer", "assistant", "tool")
        elif role == "assistant":
            allowed = previous in ("user", "tool")
        else:  # tool: _validate() already tied it to the assistant's tool_calls
            allowed = previous in ("assistant", "tool")
        if not allowed:
            raise _Rejected(NOT_ALTERNATING, type="BadRequestError", code=400)
        previous = role


# --- Rendering answers ---------------------------------------------------------------

ALPHANUMERIC = string.ascii_letters + string.digits
PIECE = 4  # characters a chunk of ToolCalls' content and arguments, as OpenAI streams them
# (message, type, code) of OpenAI's errors that do not depend on the request.
FIXED_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    403: ("You are not allowed to sample from this model", "invalid_request_error", None),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: (
        "That model is currently overloaded with other requests. You can retry your request, or "
        "contact us through our help center at help.openai.com if the error persists.",
        "server_error",
        None,
    ),
}
NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# Azure OpenAI's first stream chunk: prompt filter results, no choices, empty id/model/object.
AZURE_FILTER_CHUNK = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                category: {"filtered": False, "severity": "safe"}
                for category in ("hate", "self_harm", "sexual", "violence")
            },
        }
    ],
}


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def _tokens(text: str) -> int:
    """A plausible token count: about four characters a token."""
    return -(-len(text) // 4)


def _masked_key(key: str) -> str:
    """An API key as OpenAI's 401 shows it: the first 8 and last 4 characters."""
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def _incorrect_key_message(key: str) -> str:
    return (
        f"Incorrect API key provided: {_masked_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username and "
    "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
)


def _bearer_key(headers: dict[str, str]) -> str:
    authorization = headers.get("authorization", "")
    return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else authorization


def _error_defaults(status: int, model: str, key: str) -> tuple[str, str, str | None]:
    """OpenAI's (message, type, code) for an error status."""
    if status == 401:
        return _incorrect_key_message(key), "invalid_request_error", "invalid_api_key"
    if status == 404:
        message = f"The model `{model}` does not exist or you do not have access to it."
        return message, "invalid_request_error", "model_not_found"
    if status == 429:
        message = (
            f"Rate limit reached for {model} in organization org-test on tokens per min (TPM): "
            "Limit 30000, Used 30000, Requested 120. Please try again in 240ms. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        return message, "tokens", "rate_limit_exceeded"
    if status in FIXED_ERRORS:
        return FIXED_ERRORS[status]
    return HTTPStatus(status).phrase, "server_error" if status >= 500 else "invalid_request_error", None


def _error_payload(error: Error, body: dict | None, headers: dict[str, str]) -> dict:
    """The {"error": …} body for a scripted Error, defaults filled in for its status."""
    default_message, default_type, default_code = _error_defaults(
        error.status, (body or {}).get("model", ""), _bearer_key(headers)
    )
    message = error.message if error.message is not None else default_message
    message = message.replace("{authorization}", headers.get("authorization", ""))
    return {
        "error": {
            "message": message,
            "type": error.type if error.type is not None else default_type,
            "param": error.param,
            "code": error.code if error.code is not None else default_code,
        }
    }


def _nginx_page(status: int) -> str:
    return NGINX_PAGE.format(status=status, phrase=HTTPStatus(status).phrase)


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _think_pieces(reasoning: str, content: str, size: int) -> list[str]:
    """'<think>reasoning</think>content' in pieces of `size`, also cut inside both tags."""
    text = f"<think>{reasoning}</think>{content}"
    close_tag = len("<think>") + len(reasoning)
    cuts = sorted({*range(size, len(text), size), 3, close_tag + 4})
    return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)])]


def _arguments_text(call: Call) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _text_content(reply: Text) -> str:
    if reply.reasoning and reply.think_tags:
        return f"<think>{reply.reasoning}</think>{reply.content}"
    return reply.content


def _call_objects(reply: ToolCalls, arguments: Callable[[Call], str]) -> list[dict]:
    """The calls as in a message's tool_calls; an unset id is made up anew each answer."""
    return [
        {
            "id": call.id or _random_id("call_", 24),
            "type": "function",
            "function": {"name": call.name, "arguments": arguments(call)},
        }
        for call in reply.calls
    ]


class _Completion:
    """One chat completion being answered: its id, timestamps and usage, and the JSON
    objects it is sent as (OpenAI's field set, from the SDK's types and recordings)."""

    def __init__(self, body: dict, fingerprint: str):
        self.id = _random_id("chatcmpl-", 29)
        self.created = int(time.time())
        self.model = body["model"]
        self.fingerprint = fingerprint
        options = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))
        # OpenAI pads chunks with a random "obfuscation" field unless told not to.
        self.obfuscate = options.get("include_obfuscation", True)
        self.prompt_tokens = _tokens(json.dumps(body["messages"]))

    def _envelope(self, obj: str, **fields) -> dict:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
            **fields,
        }

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._stream_chunk([choice], None)

    def usage_chunk(self, usage: dict) -> dict:
        return self._stream_chunk([], usage)

    def _stream_chunk(self, choices: list, usage: dict | None) -> dict:
        chunk = self._envelope("chat.completion.chunk", choices=choices)
        if self.include_usage:
            chunk["usage"] = usage
        if self.obfuscate:
            chunk["obfuscation"] = _random_id("", secrets.randbelow(12) + 1)
        return chunk

    def usage(self, reply: Text | ToolCalls) -> dict:
        if isinstance(reply, Text) and reply.think_tags:
            reasoning = 0  # in the content: the server does not know it for reasoning
            completion = _tokens(_text_content(reply))
        elif isinstance(reply, Text):
            reasoning = _tokens(reply.reasoning or "")
            completion = _tokens(reply.content) + reasoning
        else:
            reasoning = 0
            written = reply.content + "".join(call.name + _arguments_text(call) for call in reply.calls)
            completion = _tokens(written)
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        usage.update(reply.usage or {})
        if "total_tokens" not in (reply.usage or {}):
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return usage

    def events(self, reply: Text | ToolCalls) -> list[str]:
        """The SSE data payloads of the streamed answer, ending with [DONE]."""
        chunks = []
        if isinstance(reply, Text) and reply.no_choices_first:
            chunks.append(AZURE_FILTER_CHUNK)
        chunks += [self.chunk(delta) for delta in self._deltas(reply)]
        chunks.append(self.chunk({}, reply.finish_reason))
        if self.include_usage:
            chunks.append(self.usage_chunk(self.usage(reply)))
        return [json.dumps(chunk, separators=(",", ":")) for chunk in chunks] + ["[DONE]"]

    def _deltas(self, reply: Text | ToolCalls) -> list[dict]:
        if isinstance(reply, Text):
            return self._text_deltas(reply)
        return self._tool_call_deltas(reply)

    @staticmethod
    def _text_deltas(reply: Text) -> list[dict]:
        deltas = [{"role": "assistant", "content": "", "refusal": None}]
        if reply.reasoning and reply.think_tags:
            pieces = _think_pieces(reply.reasoning, reply.content, reply.chunk_size)
        else:
            if reply.reasoning:
                deltas += [{reply.reasoning_field: piece} for piece in _pieces(reply.reasoning, reply.chunk_size)]
            pieces = _pieces(reply.content, reply.chunk_size)
        return deltas + [{"content": piece} for piece in pieces]

    @staticmethod
    def _tool_call_deltas(reply: ToolCalls) -> list[dict]:
        # OpenAI's role chunk has content null when the answer is only tool calls.
        deltas = [{"role": "assistant", "content": "" if reply.content else None, "refusal": None}]
        deltas += [{"content": piece} for piece in _pieces(reply.content, PIECE)]
        if reply.style == "ollama":
            calls = _call_objects(reply, _arguments_text)
            return deltas + [{"tool_calls": [{"index": index, **call} for index, call in enumerate(calls)]}]
        headers = _call_objects(reply, lambda call: "")
        for index, (header, call) in enumerate(zip(headers, reply.calls)):
            deltas.append({"tool_calls": [{"index": index, **header}]})
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in _pieces(_arguments_text(call), PIECE)
            ]
        return deltas

    def completion(self, reply: Text | ToolCalls) -> dict:
        """The whole chat.completion object (stream=false)."""
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if isinstance(reply, Text):
            message["content"] = _text_content(reply)
            if reply.reasoning and not reply.think_tags:
                message[reply.reasoning_field] = reply.reasoning
        else:
            message["content"] = reply.content or None
            message["tool_calls"] = _call_objects(reply, _arguments_text)
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        return self._envelope("chat.completion", choices=[choice], usage=self.usage(reply))


# --- HTTP plumbing -------------------------------------------------------------------


class _Exchange:
    """One HTTP request/response on the ASGI interface."""

    def __init__(self, scope: dict, receive, send):
        self.method = scope["method"]
        self.path = scope["path"]
        self.headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        self._receive = receive
        self._send = send
        self._disconnected = asyncio.Event()
        self._watcher: asyncio.Task | None = None

    async def read_body(self) -> bytes:
        chunks = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._disconnected.set()
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    def _watch(self) -> None:
        """Once the body is read, uvicorn's receive() returns only on disconnect (the
        client's, or the connection aborted by OpenAIServer.stop)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._await_disconnect())

    async def _await_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._disconnected.set()

    async def wait_disconnect(self) -> None:
        self._watch()
        await self._disconnected.wait()

    async def pause(self, seconds: float) -> bool:
        """Waits `seconds`; True if the client went away meanwhile."""
        self._watch()
        try:
            await asyncio.wait_for(self._disconnected.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def start(self, status: int, content_type: str, headers: dict | None = None, length: int | None = None):
        """Sends the status line and headers; without `length` the body goes chunked."""
        headers = {"content-type": content_type, "x-request-id": _random_id("req_", 32), **(headers or {})}
        if length is not None:
            headers["content-length"] = str(length)
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        await self._send({"type": "http.response.start", "status": status, "headers": encoded})

    async def write(self, data: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def send_whole(self, status: int, content_type: str, data: bytes, headers: dict | None = None) -> None:
        await self.start(status, content_type, headers, length=len(data))
        await self.write(data, more=False)

    async def send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        await self.send_whole(status, "application/json", json.dumps(payload).encode(), headers)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


class _DroppedOnPurpose(logging.Filter):
    """Silences uvicorn's complaint about the responses Drop leaves unfinished: this app
    leaves no other response unfinished."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that reports when it listens and force-closes connections on exit."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def shutdown(self, sockets=None) -> None:
        # Abort every connection first: a Hang or Stall then sees its client gone and
        # returns, instead of holding uvicorn's graceful shutdown open.
        for connection in list(self.server_state.connections):
            connection.transport.abort()
        await super().shutdown(sockets=sockets)


SSE_HEADERS = {"cache-control": "no-cache"}
EVENT_STREAM = "text/event-stream; charset=utf-8"


class OpenAIServer:
    """A scriptable OpenAI-compatible chat-completions server; see the module docstring."""

    def __init__(self, *, strict: bool = False, api_key: str | None = None, model: str = "gpt-4o-mini"):
        self.strict = strict
        self.api_key = api_key
        self.model = model
        self._fingerprint = "fp_" + secrets.token_hex(5)
        self._lock = threading.RLock()  # reentrant: a matcher may read server.requests
        self._arrived = threading.Condition(self._lock)
        self._rules: list[_Rule] = []
        self._requests: list[Recorded] = []
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._log_filter = _DroppedOnPurpose()
        self._port: int | None = None

    # Lifecycle

    def start(self) -> OpenAIServer:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",  # uvicorn cannot tell a bound method's interface
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        self._uvicorn = _Uvicorn(config)
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name=f"openai-server-{self._port}", daemon=True
        )
        self._thread.start()
        if not self._uvicorn.ready.wait(timeout=10):
            self.stop()
            raise RuntimeError("the OpenAI stand-in server did not start within 10 s")
        return self

    def stop(self) -> None:
        """Stops the server, force-closing open connections (hung or stalled ones too)."""
        if self._thread is None:
            return
        self._uvicorn.should_exit = True  # uvicorn checks it every 0.1 s
        self._thread.join(timeout=5)
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        thread, self._thread = self._thread, None
        if thread.is_alive():
            raise RuntimeError("the OpenAI stand-in server did not stop within 5 s")

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # Script

    def on(self, matcher: Matcher, *responses: Response) -> None:
        """Answers requests matching `matcher` with `responses`, one each, in order;
        used up, the rule no longer matches. Rules are tried in the order added."""
        if not responses:
            raise ValueError("on() needs at least one response")
        with self._lock:
            self._rules.append(_Rule(matcher, deque(responses)))

    def reset(self) -> None:
        """Forgets the rules and the recorded requests."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()

    def _next_response(self, body: dict) -> Response:
        with self._lock:
            for rule in self._rules:
                if rule.responses and rule.matcher(body):
                    return rule.responses.popleft()
        return _default_reply(body)

    # Record

    @property
    def requests(self) -> list[Recorded]:
        """The requests so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[dict]:
        """The parsed bodies of the chat-completions requests so far, rejected ones too."""
        return [
            recorded.body
            for recorded in self.requests
            if recorded.path == "/v1/chat/completions" and recorded.body is not None
        ]

    def wait_for_requests(self, n: int, timeout: float = 10) -> list[Recorded]:
        """Blocks until at least `n` requests have arrived; raises TimeoutError if not."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= n, timeout=timeout):
                raise TimeoutError(f"{len(self._requests)} request(s) arrived within {timeout} s, not {n}")
            return list(self._requests)

    def _record(self, exchange: _Exchange, body: dict | None, status: int) -> None:
        with self._arrived:
            self._requests.append(Recorded(exchange.method, exchange.path, exchange.headers, body, status))
            self._arrived.notify_all()

    # ASGI

    async def _app(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return
        exchange = _Exchange(scope, receive, send)
        try:
            await self._route(exchange, await exchange.read_body())
        finally:
            exchange.close()

    async def _route(self, exchange: _Exchange, raw: bytes) -> None:
        key_problem = self._key_problem(exchange.headers)
        if key_problem is not None:
            self._record(exchange, _json_or_none(raw), 401)
            await exchange.send_json(401, key_problem)
        elif (exchange.method, exchange.path) == ("POST", "/v1/chat/completions"):
            await self._chat(exchange, raw)
        elif (exchange.method, exchange.path) == ("GET", "/v1/models"):
            self._record(exchange, None, 200)
            model = {"id": self.model, "object": "model", "created": 1686935002, "owned_by": "system"}
            await exchange.send_json(200, {"object": "list", "data": [model]})
        else:
            self._record(exchange, _json_or_none(raw), 404)
            message = f"Invalid URL ({exchange.method} {exchange.path})"
            await exchange.send_json(404, _Rejected(message).body)

    def _key_problem(self, headers: dict[str, str]) -> dict | None:
        if self.api_key is None:
            return None
        if not headers.get("authorization"):
            return _Rejected(NO_KEY_MESSAGE).body
        key = _bearer_key(headers)
        if key != self.api_key:
            return _Rejected(_incorrect_key_message(key), code="invalid_api_key").body
        return None

    async def _chat(self, exchange: _Exchange, raw: bytes) -> None:
        body = None
        try:
            body = _parse_body(raw)
            _validate(body)
            if self.strict:
                _validate_alternation(body["messages"])
        except _Rejected as rejection:
            self._record(exchange, body, 400)
            await exchange.send_json(400, rejection.body)
            return
        try:
            response = self._next_response(body)
        except Exception:
            self._record(exchange, body, 500)  # a failing matcher: uvicorn logs it and answers 500
            raise
        self._record(exchange, body, _status_of(response))
        await self._answer(exchange, body, response)

    async def _answer(self, exchange: _Exchange, body: dict, response: Response) -> None:
        if isinstance(response, Error):
            await _send_error(exchange, body, response)
        elif isinstance(response, Hang):
            await exchange.wait_disconnect()
        else:
            await _send_completion(exchange, _Completion(body, self._fingerprint), body, response)


def _json_or_none(raw: bytes) -> dict | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _status_of(response: Response) -> int:
    if isinstance(response, Error):
        return response.status
    return 0 if isinstance(response, Hang) else 200


async def _send_error(exchange: _Exchange, body: dict, error: Error) -> None:
    if error.html:
        page = error.message if error.message is not None else _nginx_page(error.status)
        await exchange.send_whole(error.status, "text/html", page.encode(), error.headers)
    else:
        await exchange.send_json(error.status, _error_payload(error, body, exchange.headers), error.headers)


async def _send_completion(exchange: _Exchange, completion: _Completion, body: dict, response: Response) -> None:
    """Answers with a Text or ToolCalls, whole or cut short by a Stall or Drop."""
    reply = response.response if isinstance(response, Stall | Drop) else response
    cut_after = response.after_chunks if isinstance(response, Stall | Drop) else None
    if body.get("stream"):
        done = await _stream(exchange, completion.events(reply), reply.delay, cut_after)
    else:
        done = await _send_body(exchange, completion.completion(reply), reply.delay, cut_after)
    if done or isinstance(response, Drop):
        return  # a Drop returns unfinished: uvicorn then closes the connection mid-body
    if response.keepalive:
        while not await exchange.pause(response.keepalive):
            await exchange.write(b": keepalive\n\n")
    else:
        await exchange.wait_disconnect()


async def _stream(exchange: _Exchange, events: list[str], delay: float, cut_after: int | None) -> bool:
    """Streams the events (all, or the first `cut_after`). True when done: the stream
    complete, or the client gone; False when cut short by `cut_after`."""
    await exchange.start(200, EVENT_STREAM, SSE_HEADERS)
    for index, event in enumerate(events[:cut_after]):
        if index and delay and await exchange.pause(delay):
            return True  # the client left: nothing more to send
        await exchange.write(f"data: {event}\n\n".encode())
    if cut_after is not None:
        return False
    await exchange.write(b"", more=False)
    return True


async def _send_body(exchange: _Exchange, payload: dict, delay: float, cut_after: int | None) -> bool:
    """Sends a whole JSON body, or (cut_after set) its headers and, if cut_after > 0, half of
    it. True when done, as for _stream."""
    if delay and await exchange.pause(delay):
        return True
    data = json.dumps(payload).encode()
    if cut_after is None:
        await exchange.send_whole(200, "application/json", data)
        return True
    await exchange.start(200, "application/json", length=len(data))
    if cut_after > 0:
        await exchange.write(data[: len(data) // 2])
    return False

"""One call to a chat model, streamed: timeouts for the first chunk and for a stall
between chunks, bounded retries while nothing of the reply was shown, reasoning kept
apart from the answer, and every failure turned into words a user can read.

The connect timeout is the model's own (agent.llm gives it to the provider's client);
the first-chunk and stall timeouts are kept here, so they hold for every provider.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

from django.conf import settings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, InvalidToolCall, ToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call

from chatproject.redaction import redact

logger = logging.getLogger(__name__)

ANSWER = "answer"
REASONING = "reasoning"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# How a reply that ran out of output tokens ends, by provider: OpenAI and compatible
# servers (and Ollama's done_reason) "length", Anthropic "max_tokens", Google "MAX_TOKENS".
CUT_OFF_REASONS = {"length", "max_tokens", "MAX_TOKENS"}
FILTERED_REASONS = {"content_filter", "SAFETY"}
BACKOFF_SECONDS, BACKOFF_MAX_SECONDS = 1.0, 20.0

MESSAGES = {
    "rate_limited": "The model server is rate limiting requests right now. Try again in a moment.",
    "quota": "The model provider's quota for this app is used up. An administrator needs to check the account.",
    "auth": "The model server refused the app's credentials (authentication failed). An administrator needs to check the API key.",
    "not_found": "The model server does not know this model. An administrator needs to check the model's name.",
    "context": "The conversation is too long for the model, even with its older turns summarized.",
    "refused": "The model server refused the request.",
    "unavailable": "The model server is unavailable right now. Try again in a moment.",
    "timeout": "The model server did not answer in time.",
    "dropped": "The connection to the model server was lost while it was writing the reply.",
}
RETRYABLE = {"rate_limited", "unavailable", "timeout"}


class ModelCallFailed(Exception):
    """A model call that failed for good; `str()` is the message for the user."""

    def __init__(self, kind: str, *, retry_after: float | None = None):
        self.kind = kind
        self.retry_after = retry_after
        text = MESSAGES[kind]
        if kind == "rate_limited" and retry_after:
            text = text.replace("in a moment", f"in {max(1, round(retry_after))} seconds")
        super().__init__(text)


class StreamTimeout(Exception):
    def __init__(self, waited_for: str):
        super().__init__(f"no {waited_for} from the model server within the timeout")


Deltas = Callable[[str, str], Awaitable[None]]


async def stream_reply(
    model: BaseChatModel, messages: list[BaseMessage], *, message_id: str | None = None, on_delta: Deltas | None
) -> AIMessage:
    """The model's reply, streamed through `on_delta(part, text)` (part ANSWER or
    REASONING; None: a reply for the app, not shown). Retried up to CHAT_MAX_RETRIES
    times, with backoff that honours the server's Retry-After, while nothing was shown;
    ModelCallFailed when it fails for good."""
    retries = 0
    while True:
        shown = _Shown(on_delta)
        try:
            return await _stream_once(model, messages, message_id=message_id, on_delta=shown)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            kind, retry_after = classify(error, shown=shown.any)
            if kind is None:
                raise
            logger.warning("model call failed (%s, attempt %d): %s", kind, retries + 1, redact(_describe(error)))
            wait = retry_after if retry_after is not None else _backoff(retries)
            if kind not in RETRYABLE or shown.any or retries >= settings.CHAT_MAX_RETRIES:
                raise ModelCallFailed(kind, retry_after=retry_after) from None
            if wait > settings.CHAT_RETRY_MAX_WAIT_SECONDS:
                raise ModelCallFailed(kind, retry_after=retry_after) from None
            retries += 1
            await asyncio.sleep(wait)


class _Shown:
    """`on_delta`, noting whether anything reached it."""

    def __init__(self, on_delta: Deltas | None):
        self.on_delta = on_delta
        self.any = False

    async def __call__(self, part: str, text: str) -> None:
        if text and self.on_delta is not None:
            self.any = True
            await self.on_delta(part, text)


async def _stream_once(model: BaseChatModel, messages: list[BaseMessage], *, message_id: str | None, on_delta: _Shown) -> AIMessage:
    chunks = aiter(model.astream(messages))
    merged: AIMessageChunk | None = None
    splitter = ThinkSplitter()
    waited_for, timeout = "first chunk", settings.CHAT_TIMEOUT_SECONDS
    try:
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise StreamTimeout(waited_for) from None
            waited_for, timeout = "chunk", settings.CHAT_STALL_TIMEOUT_SECONDS
            merged = chunk if merged is None else merged + chunk
            await on_delta(REASONING, chunk.additional_kwargs.get("reasoning_content") or "")
            for part, text in splitter.feed(chunk.text):
                await on_delta(part, text)
        for part, text in splitter.flush():
            await on_delta(part, text)
    finally:
        await chunks.aclose()
    return _reply(merged, splitter, message_id)


def _reply(merged: AIMessageChunk | None, splitter: "ThinkSplitter", message_id: str | None) -> AIMessage:
    """The whole reply: the answer as its content, the reasoning apart (never sent back
    to the model), no tool call of a reply that was cut off, an id for every call (some
    servers send none, and each result must name its call)."""
    merged = merged or AIMessageChunk(content="")
    tool_calls, invalid_tool_calls = _strictly_parsed(merged)
    for call in [*tool_calls, *invalid_tool_calls]:
        call["id"] = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    reasoning = "".join(filter(None, [merged.additional_kwargs.get("reasoning_content", ""), splitter.reasoning]))
    finish_reason = merged.response_metadata.get("finish_reason") or merged.response_metadata.get("stop_reason")
    ending = "length" if finish_reason in CUT_OFF_REASONS else "filtered" if finish_reason in FILTERED_REASONS else ""
    whole = AIMessage(
        content=splitter.answer,
        id=message_id or str(uuid.uuid4()),
        tool_calls=[] if ending else tool_calls,
        invalid_tool_calls=[] if ending else invalid_tool_calls,
        usage_metadata=merged.usage_metadata,
        response_metadata={**merged.response_metadata, "ending": ending},
        additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
    )
    return whole


def _strictly_parsed(merged: AIMessageChunk) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """The reply's tool calls whose arguments are a JSON object, and the others.
    LangChain completes JSON cut off mid-string (to show partial calls while they
    stream), so a truncated e-mail body would pass as a whole one: the raw arguments
    are parsed again here, strictly."""
    if not merged.tool_call_chunks:
        return merged.tool_calls, merged.invalid_tool_calls
    valid, invalid = [], []
    for chunk in merged.tool_call_chunks:
        raw = chunk.get("args") or "{}"
        try:
            args = json.loads(raw)
            error = None if isinstance(args, dict) else "the arguments are not a JSON object"
        except ValueError as parse_error:
            error = f"{parse_error.msg} at character {parse_error.pos}"
        if error is None:
            valid.append(tool_call(name=chunk.get("name") or "", args=args, id=chunk.get("id")))
        else:
            invalid.append(invalid_tool_call(name=chunk.get("name"), args=raw, id=chunk.get("id"), error=error))
    return valid, invalid


class ThinkSplitter:
    """Splits streamed content into answer and reasoning, where a model writes its
    reasoning inline as <think>…</think> (DeepSeek-R1, Qwen and others through servers
    that do not separate it). A tag may be split across chunks: text that could be the
    start of one waits for the next chunk."""

    def __init__(self):
        self.thinking = False
        self.pending = ""
        self.answer = ""
        self.reasoning = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.pending += text
        parts = []
        while self.pending:
            tag = THINK_CLOSE if self.thinking else THINK_OPEN
            index = self.pending.find(tag)
            if index >= 0:
                parts.append(self._take(self.pending[:index]))
                self.pending = self.pending[index + len(tag):]
                self.thinking = not self.thinking
                continue
            keep = _partial_tag_length(self.pending, tag)
            parts.append(self._take(self.pending[: len(self.pending) - keep]))
            self.pending = self.pending[len(self.pending) - keep:]
            break
        return [part for part in parts if part[1]]

    def flush(self) -> list[tuple[str, str]]:
        rest, self.pending = self.pending, ""
        return [part for part in [self._take(rest)] if part[1]]

    def _take(self, text: str) -> tuple[str, str]:
        if self.thinking:
            self.reasoning += text
            return REASONING, text
        self.answer += text
        return ANSWER, text


def _partial_tag_length(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


def classify(error: Exception, *, shown: bool) -> tuple[str | None, float | None]:
    """(kind of failure, seconds the server asked to wait) of a model call's error; kind
    None for an error that is not the model server's (a bug: raised as it is)."""
    if isinstance(error, StreamTimeout):
        return "timeout", None
    status = _status_code(error)
    if status is not None:
        return _kind_of_status(status, error), _retry_after(error)
    # By class name, anywhere in the error's classes: the openai SDK (and LangChain's
    # subclasses of its errors), and httpx, whichever copy of it the SDK uses.
    names = {cls.__name__ for cls in type(error).__mro__}
    if isinstance(error, TimeoutError) or names & {"APITimeoutError", "TimeoutException"}:
        return "timeout", None
    if isinstance(error, ConnectionError) or names & {"APIConnectionError", "APIError", "TransportError"}:
        return ("dropped" if shown else "unavailable"), None
    return None, None


def _kind_of_status(status: int, error: Exception) -> str:
    code = _error_code(error)
    if status == 429:
        return "quota" if code == "insufficient_quota" else "rate_limited"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 413 or code == "context_length_exceeded" or "context length" in _describe(error).lower():
        return "context"
    if status in (408, 409) or status >= 500:
        return "unavailable"
    return "refused"


def _status_code(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    if status is None:  # httpx's HTTPStatusError: on its response
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _error_code(error: Exception) -> str | None:
    """The error's code in OpenAI's error body ("insufficient_quota", …), if any."""
    code = getattr(error, "code", None)
    if code is None and isinstance(body := getattr(error, "body", None), dict):
        inner = body.get("error", body)
        code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(error: Exception) -> float | None:
    """Seconds from the response's retry-after-ms or Retry-After (seconds or a date)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        if value.strip().replace(".", "", 1).isdigit():
            return float(value)
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _backoff(retries: int) -> float:
    return min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2**retries) * (0.5 + random.random() / 2)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, message: AIMessage) -> "Usage":
        usage = message.usage_metadata or {}
        details = usage.get("output_token_details") or {}
        return cls(usage.get("input_tokens", 0), usage.get("output_tokens", 0), details.get("reasoning", 0))

    def as_fields(self) -> dict:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "reasoning_tokens": self.reasoning_tokens}

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

"""The offline model: a deterministic LangChain chat model that ships with the app, so
that everything works with no API key and tests are repeatable (rules in docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any, AsyncIterator, Iterator, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from .prompts import SUMMARY_HEADING, SUMMARY_PROMPT, TRANSCRIPT_USER

EMAIL_RE = re.compile(r"^\s*email\s+(\S+)\s+([^:]+?)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
TASK_RE = re.compile(r"^\s*task\s+(.+?)\s*$", re.IGNORECASE | re.DOTALL)
SLOW_RE = re.compile(r"^\s*slow\s+(\d+)\s*$", re.IGNORECASE)
RECALL_RE = re.compile(r"^\s*recall\s*$", re.IGNORECASE)
POST_RE = re.compile(r"^\s*post\s+(\S+)\s*(\{.*\})?\s*$", re.IGNORECASE | re.DOTALL)
TIME_RE = re.compile(r"^\s*(time|what time is it)\??\s*$", re.IGNORECASE)
MAX_SLOW_WORDS = 100_000
# The offline summary keeps one line per earlier user message, this long at most.
SUMMARY_LINE_CHARS = 100
SUMMARY_LINE = "- The user said: "
SUMMARY_WORDS_RE = re.compile(r"at most (\d+) words")


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that ships with the app (rules in docs/protocol.md).

    It streams its reply a word at a time, `delay_ms` apart, and calls a tool only if
    that tool was bound with `bind_tools`. Like a real model it stops at `max_tokens`
    (a word counts as a token; the reply then ends with finish_reason "length"), reports
    its usage on the last chunk, and summarizes earlier turns when asked with
    prompts.SUMMARY_PROMPT.
    """

    delay_ms: int = 20
    max_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "offline"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, BaseMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            reply = chunk if reply is None else reply + chunk
        message = reply.message
        whole = AIMessage(
            content=message.content, tool_calls=message.tool_calls, usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=whole)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        for index, chunk in enumerate(self._reply_chunks(messages, kwargs.get("tools") or [])):
            if index and self.delay_ms:
                time.sleep(self.delay_ms / 1000)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for index, chunk in enumerate(self._reply_chunks(messages, kwargs.get("tools") or [])):
            if index and self.delay_ms:
                await asyncio.sleep(self.delay_ms / 1000)
            if run_manager and chunk.message.content:
                await run_manager.on_llm_new_token(chunk.message.content, chunk=chunk)
            yield chunk

    def _reply_chunks(self, messages: list[BaseMessage], tools: list[dict]) -> Iterator[ChatGenerationChunk]:
        if _is_summary_request(messages):
            asked = SUMMARY_WORDS_RE.search(messages[0].text)
            summary = _summary(messages[-1].text, int(asked[1]) if asked else None)
            words, finish_reason = self._limited(summary.split(" "))
            yield from self._word_chunks(words, finish_reason, messages)
            return
        tool_calls = [] if isinstance(messages[-1], ToolMessage) else self._tool_calls(messages, tools)
        if tool_calls:
            chunks = [{**call, "args": json.dumps(call["args"]), "index": i} for i, call in enumerate(tool_calls)]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks))
            yield self._last_chunk("tool_calls", messages, output_tokens=len(chunks))
            return
        words, finish_reason = self._limited(self._reply_text(messages).split(" "))
        yield from self._word_chunks(words, finish_reason, messages)

    def _limited(self, words: list[str]) -> tuple[list[str], str]:
        if self.max_tokens is not None and len(words) > self.max_tokens:
            return words[: self.max_tokens], "length"
        return words, "stop"

    def _word_chunks(self, words: list[str], finish_reason: str, messages) -> Iterator[ChatGenerationChunk]:
        for index, word in enumerate(words):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word if index == 0 else " " + word))
        yield self._last_chunk(finish_reason, messages, output_tokens=len(words))

    @staticmethod
    def _last_chunk(finish_reason: str, messages, *, output_tokens: int) -> ChatGenerationChunk:
        """No text: how the reply ended, and its usage, as providers send them last."""
        input_tokens = count_tokens_approximately(messages)
        usage = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=usage,
                response_metadata={"finish_reason": finish_reason, "model_name": "offline"},
            )
        )

    def _tool_calls(self, messages: list[BaseMessage], tools: list[dict]) -> list[dict]:
        """One tool call per line if each line of the message is a command, else the
        message as one command (an e-mail's body may span lines)."""
        bound = {t["function"]["name"] for t in tools}
        text = _last_user_text(messages)
        commands = [_tool_command(line) for line in text.splitlines() if line.strip()]
        if len(commands) < 2 or not all(commands):
            commands = [_tool_command(text)]
        if not all(command and command[0] in bound for command in commands):
            return []
        return [{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:24]}"} for name, args in commands]

    def _reply_text(self, messages: list[BaseMessage]) -> str:
        results = _trailing_tool_results(messages)
        if results:
            return " ".join(_tool_outcome(result) for result in results)
        text = _last_user_text(messages)
        if match := SLOW_RE.match(text):
            # int() of thousands of digits raises: anything past MAX_SLOW_WORDS is that many.
            digits = match[1].lstrip("0") or "0"
            count = MAX_SLOW_WORDS if len(digits) > len(str(MAX_SLOW_WORDS)) else min(int(digits), MAX_SLOW_WORDS)
            return " ".join(f"tick{i}" for i in range(1, count + 1)) if count else "(nothing)"
        if RECALL_RE.match(text):
            earlier = _summarized_user_messages(messages) + [m.text for m in messages if isinstance(m, HumanMessage)][:-1]
            return "\n".join(earlier) if earlier else "You have not said anything before this."
        return f'You said: "{text}"'


def _tool_command(text: str) -> tuple[str, dict] | None:
    """The tool and arguments a message asks for, by the rules of docs/protocol.md."""
    if match := EMAIL_RE.match(text):
        return "send_email", {"to": match[1], "subject": match[2], "body": match[3]}
    if match := TASK_RE.match(text):
        return "create_task", {"title": match[1]}
    if (match := POST_RE.match(text)) and (payload := _json_object(match[2] or "{}")) is not None:
        return "http_post", {"url": match[1], "json": payload}
    if TIME_RE.match(text):
        return "current_time", {}
    return None


def _json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _trailing_tool_results(messages: list[BaseMessage]) -> list[ToolMessage]:
    results = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.insert(0, message)
    return results


def _last_user_text(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _tool_outcome(result: ToolMessage) -> str:
    name = result.name or "the tool"
    if result.text.startswith("Rejected by the user"):
        return f"The user rejected the {name} call, so I did not do it."
    if result.text.startswith("Outcome unknown"):
        return f"I cannot tell whether the {name} call took effect: the server stopped while it ran, and it was not run again."
    if result.status == "error":
        return f"The {name} call failed: {result.text}"
    outcomes = {"send_email": "The e-mail was sent.", "create_task": "The task was created."}
    return outcomes.get(name, f"The {name} call succeeded: {result.text}")


def _is_summary_request(messages: list[BaseMessage]) -> bool:
    return isinstance(messages[0], SystemMessage) and messages[0].text.startswith(SUMMARY_PROMPT[:40])


def _summary(request: str, max_words: int | None) -> str:
    """The earlier summary's lines, then one line per user message of the new turns; the
    latest lines that fit in `max_words`."""
    lines = [line for line in request.splitlines() if line.startswith(SUMMARY_LINE)]
    lines += [
        SUMMARY_LINE + line[len(TRANSCRIPT_USER):].strip()[:SUMMARY_LINE_CHARS]
        for line in request.splitlines()
        if line.startswith(TRANSCRIPT_USER)
    ]
    kept, words = [], 0
    for line in reversed(lines):
        words += len(line.split(" "))
        if max_words is not None and words > max_words:
            break
        kept.insert(0, line)
    return "\n".join(kept) if kept else "Nothing was said yet."


def _summarized_user_messages(messages: list[BaseMessage]) -> list[str]:
    """The user messages an offline summary in the system prompt lists."""
    if not messages or not isinstance(messages[0], SystemMessage) or SUMMARY_HEADING not in messages[0].text:
        return []
    summary = messages[0].text.split(SUMMARY_HEADING, 1)[1]
    return [line[len(SUMMARY_LINE):] for line in summary.splitlines() if line.startswith(SUMMARY_LINE)]

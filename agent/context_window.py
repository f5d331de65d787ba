"""What the model sees of a conversation: the system prompt (with the summary of the
turns that no longer fit), the earlier turns of the run's line as the messages they
were, and the current turn, within a token budget cut only between turns.

A turn is a user message and everything its run stored: assistant replies with their
tool calls and one tool result per call. Every tool call gets its result, so no provider
sees an orphan call: a call that never ran gets one that says so. Reasoning is never
sent back. Tokens are counted approximately (characters / 4, as LangChain's
`count_tokens_approximately`): the budget leaves room for the reply.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from itertools import groupby
from typing import AsyncIterator

from django.conf import settings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.messages.utils import count_tokens_approximately, merge_message_runs

from .context import ChatContext, HistoryRow
from .llm import OFFLINE, LoadedModel
from .model_calls import Usage, stream_reply
from .prompts import (
    NOT_RUN, SUMMARY_HEADING, SUMMARY_PROMPT, SYSTEM_PROMPT, TRANSCRIPT_ASSISTANT, TRANSCRIPT_CALL, TRANSCRIPT_TOOL,
    TRANSCRIPT_USER,
)

# After a summary, the turns kept verbatim fill at most this share of the budget, so
# that the next turns fit without summarizing again at once.
KEPT_SHARE = 0.5
# A summary's length, as a share of the budget, and at most.
SUMMARY_SHARE, SUMMARY_MAX_TOKENS = 0.125, 1000
SUMMARY_CHARS_PER_WORD = 8
ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL = "user", "assistant", "tool"


@dataclass
class Turn:
    rows: list[HistoryRow]
    messages: list[BaseMessage]
    tokens: int

    @property
    def turn_at(self):
        return self.rows[0].turn_at

    @property
    def last_row(self) -> HistoryRow:
        return self.rows[-1]


@dataclass
class Window:
    """The messages for the model, or (`fold`) the oldest turns to summarize first."""

    messages: list[BaseMessage] = field(default_factory=list)
    fold: list[Turn] = field(default_factory=list)
    summary: object | None = None


async def window_for(context: ChatContext, current: list[BaseMessage], model: LoadedModel) -> Window:
    """The context for the model's next step, or the turns to fold into the summary."""
    budget = _history_budget(model, current)
    kept, unfit = await _newest_turns(context, budget)
    if unfit is None:
        return Window(messages=_assembled(model, None, kept, current))
    summary = await context.transcript.latest_summary()
    if summary is not None:
        budget -= _tokens([_system(summary.content)]) - _tokens([_system(None)])
        # The turns read already serve: those after the summary are among them, unless
        # the turn that did not fit (in the larger budget) comes after it too.
        if unfit.turn_at <= summary.through_turn_at:
            after = [turn for turn in kept if turn.turn_at > summary.through_turn_at]
            if sum(turn.tokens for turn in after) <= budget:
                return Window(messages=_assembled(model, summary, after, current), summary=summary)
    return Window(fold=await _turns_to_fold(context, model, summary, budget), summary=summary)


async def _newest_turns(context: ChatContext, budget: int) -> tuple[list[Turn], Turn | None]:
    """The newest earlier turns that fit in `budget`, oldest first, and the newest turn
    that does not fit (None: every earlier turn fits)."""
    kept, used = [], 0
    async for turn in _turns(context, newest_first=True):
        used += turn.tokens
        if used > budget:
            return kept[::-1], turn
        kept.append(turn)
    return kept[::-1], None


async def _turns_to_fold(context: ChatContext, model: LoadedModel, summary, budget: int) -> list[Turn]:
    """The oldest turns not yet summarized that one summary request can take, leaving
    out the newest turns that fill KEPT_SHARE of the budget."""
    after = summary.through_turn_at if summary else None
    keep_tokens, newest = int(budget * KEPT_SHARE), None
    async for turn in _turns(context, newest_first=True, after_turn_at=after):
        keep_tokens -= turn.tokens
        if keep_tokens < 0:
            newest = turn  # the newest turn that is not kept: fold up to it
            break
    request_budget = model.context_tokens - settings.CHAT_REPLY_ROOM_TOKENS - _tokens(summary_request(summary, []))
    fold, used = [], 0
    async for turn in _turns(context, newest_first=False, after_turn_at=after):
        used += _tokens([HumanMessage(_transcript(turn.messages))])
        if fold and used > request_budget:
            break
        fold.append(turn)
        if newest is None or turn.turn_at >= newest.turn_at:
            break
    return fold


async def _turns(context: ChatContext, *, newest_first: bool, after_turn_at=None) -> AsyncIterator[Turn]:
    """The line's turns before the current one, read a page at a time."""
    last: HistoryRow | None = None
    pending: list[HistoryRow] = []
    while True:
        rows = await context.transcript.history_rows(
            after_turn_at=after_turn_at, older_than=last if newest_first else None,
            newer_than=None if newest_first else last, newest_first=newest_first,
        )
        exhausted = len(rows) < context.transcript.page_size
        complete, pending = _complete_turns(pending + rows, exhausted=exhausted)
        for rows_of_turn in complete:
            ordered = rows_of_turn[::-1] if newest_first else rows_of_turn
            messages = turn_messages(ordered)
            yield Turn(ordered, messages, _tokens(messages))
        if exhausted:
            return
        last = rows[-1]


def _complete_turns(rows: list[HistoryRow], *, exhausted: bool) -> tuple[list[list[HistoryRow]], list[HistoryRow]]:
    """Rows grouped by turn; the last group waits for the next page unless none is left."""
    groups = [list(group) for _, group in groupby(rows, key=lambda row: row.turn_at)]
    if exhausted or not groups:
        return groups, []
    return groups[:-1], groups[-1]


def turn_messages(rows: list[HistoryRow]) -> list[BaseMessage]:
    """One turn's rows (in order) as the messages it was: each assistant reply followed by
    the result of each of its tool calls."""
    results = {row.tool_call_id: row for row in rows if row.role == ROLE_TOOL}
    messages: list[BaseMessage] = []
    for row in rows:
        if row.role == ROLE_USER:
            messages.append(HumanMessage(row.content, id=str(row.id)))
        elif row.role == ROLE_ASSISTANT and (row.content or row.tool_calls):
            messages.append(_assistant(row))
            for call in row.tool_calls:
                result = results.pop(call["id"], None)
                text = result.content if result is not None else NOT_RUN
                messages.append(ToolMessage(text, tool_call_id=call["id"], name=call["name"]))
    return messages


def _assistant(row: HistoryRow) -> AIMessage:
    calls = [tool_call(name=c["name"], args=c["args"], id=c["id"]) for c in row.tool_calls if "error" not in c]
    invalid = [
        invalid_tool_call(name=c["name"], args=c["args"], id=c["id"], error=c["error"])
        for c in row.tool_calls if "error" in c
    ]
    return AIMessage(row.content, tool_calls=calls, invalid_tool_calls=invalid, id=str(row.id))


def _assembled(model: LoadedModel, summary, turns: list[Turn], current: list[BaseMessage]) -> list[BaseMessage]:
    messages = [_system(summary.content if summary else None)]
    for turn in turns:
        messages += turn.messages
    messages += current
    if model.name == OFFLINE:
        return messages  # the offline model reads each message as sent
    # Providers whose chat templates need alternating roles (Mistral, Gemma on vLLM)
    # refuse two user or two assistant messages in a row (after a failed turn, say).
    return merge_message_runs(messages)


def _system(summary: str | None) -> SystemMessage:
    return SystemMessage(f"{SYSTEM_PROMPT}\n\n{SUMMARY_HEADING}\n{summary}" if summary else SYSTEM_PROMPT)


def _history_budget(model: LoadedModel, current: list[BaseMessage]) -> int:
    """Tokens left for earlier turns: the model's budget less the reply's room, the system
    prompt with the tools, and the current turn."""
    return model.context_tokens - settings.CHAT_REPLY_ROOM_TOKENS - _fixed_tokens(model) - _tokens(current)


@functools.cache
def _fixed_tokens(model: LoadedModel) -> int:
    """The system prompt's and the tools' tokens, the same every turn."""
    return count_tokens_approximately([_system(None)], tools=model.tool_specs)


def _tokens(messages: list[BaseMessage]) -> int:
    return count_tokens_approximately(messages)


def summary_words(model: LoadedModel) -> int:
    return int(min(SUMMARY_MAX_TOKENS, model.context_tokens * SUMMARY_SHARE) * 0.75)


def summary_request(summary, turns: list[Turn], words: int = SUMMARY_MAX_TOKENS) -> list[BaseMessage]:
    previous = summary.content if summary else "(none)"
    transcript = "\n".join(_transcript(turn.messages) for turn in turns)
    return [
        SystemMessage(SUMMARY_PROMPT.format(words=words)),
        HumanMessage(f"Previous summary:\n{previous}\n\nNew turns:\n{transcript}"),
    ]


def _transcript(messages: list[BaseMessage]) -> str:
    lines = []
    for message in messages:
        if isinstance(message, HumanMessage):
            lines.append(TRANSCRIPT_USER + message.text)
        elif isinstance(message, AIMessage):
            if message.text:
                lines.append(TRANSCRIPT_ASSISTANT + message.text)
            for call in [*message.tool_calls, *message.invalid_tool_calls]:
                lines.append(TRANSCRIPT_CALL.format(name=call["name"], args=json.dumps(call["args"])))
        elif isinstance(message, ToolMessage):
            lines.append(TRANSCRIPT_TOOL.format(name=message.name or "tool") + message.text)
    return "\n".join(lines)


async def fold_into_summary(context: ChatContext, model: LoadedModel, window: Window):
    """Summarize the window's `fold` turns, with the previous summary, and store it."""
    words = summary_words(model)
    reply = await stream_reply(model.model, summary_request(window.summary, window.fold, words), on_delta=None)
    usage = Usage.of(reply)
    last = window.fold[-1]
    return await context.transcript.summary_store(
        through_message_id=last.last_row.id,
        through_turn_at=last.turn_at,
        # A model that ignores the length asked for must not crowd the turns out.
        content=reply.text[: words * SUMMARY_CHARS_PER_WORD] or "(nothing to summarize)",
        turns=(window.summary.turns if window.summary else 0) + len(window.fold),
        model=model.name,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
    )

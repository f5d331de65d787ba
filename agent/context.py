"""What a run gives the graph: its runtime context (LangGraph's `context`, not
checkpointed), through which the graph reads and extends the conversation without
knowing where it is stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# The checkpoint metadata key naming the Run a checkpoint belongs to.
RUN_METADATA_KEY = "chat_run_id"


@dataclass(frozen=True)
class HistoryRow:
    """A message as the model's history needs it."""

    id: uuid.UUID
    role: str
    content: str
    tool_calls: list
    tool_call_id: str
    tool_name: str
    turn_at: datetime
    created_at: datetime

    @property
    def position(self) -> tuple[datetime, datetime, uuid.UUID]:
        return self.turn_at, self.created_at, self.id


class Transcript(Protocol):
    """The run's line of the conversation before its turn, and the line's summaries.

    A summary has `id`, `content`, `turns`, `through_turn_at`, `input_tokens` and
    `output_tokens`."""

    # Rows a page of history_rows holds at most: a shorter page is the last.
    page_size: int

    async def history_rows(
        self, *, after_turn_at: datetime | None = None, older_than: HistoryRow | None = None,
        newer_than: HistoryRow | None = None, newest_first: bool = True,
    ) -> list[HistoryRow]:
        """A page of the line's messages before the run's turn (and after `after_turn_at`),
        newest or oldest first, continuing after the row `older_than` (or `newer_than`)."""

    async def latest_summary(self) -> Any | None:
        """The summary of the most turns of the line before the run's turn, if any."""

    async def summary_store(
        self, *, through_message_id, through_turn_at: datetime, content: str, turns: int, model: str,
        input_tokens: int | None, output_tokens: int | None,
    ) -> Any:
        """Store a new summary of the line's turns up to `through_message_id`'s."""


@dataclass(frozen=True)
class ChatContext:
    """Typed runtime context of a run; not checkpointed."""

    conversation_id: str
    user_id: int
    run_id: str
    # The line of the conversation the run continues (None: it never forked).
    branch_id: str | None
    # When the turn's user message was accepted: the earlier turns are those before it.
    turn_at: datetime
    # The model that answers (agent.llm names it).
    model: str
    # The earlier turns of the line, and its summaries.
    transcript: Transcript


class RunGone(Exception):
    """The run is no longer there: it was deleted, with its conversation, while it executed."""

"""What a run gives the graph (agent.context): its line of the conversation, read and
extended through Django's tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.context import ChatContext, HistoryRow

from ..models import Summary
from ..selectors.messages import HISTORY_PAGE, ahistory_rows, alatest_summary
from ..services.summaries import asummary_store


@dataclass(frozen=True)
class LineTranscript:
    conversation_id: str
    run_id: str
    # The line (None: the conversation never forked), and the run's turn on it.
    branch_id: str | None
    turn_at: datetime
    page_size: int = HISTORY_PAGE

    async def history_rows(
        self, *, after_turn_at: datetime | None = None, older_than: HistoryRow | None = None,
        newer_than: HistoryRow | None = None, newest_first: bool = True,
    ) -> list[HistoryRow]:
        return await ahistory_rows(
            conversation_id=self.conversation_id, branch_id=self.branch_id, before_turn_at=self.turn_at,
            after_turn_at=after_turn_at, older_than=older_than, newer_than=newer_than, newest_first=newest_first,
            limit=self.page_size,
        )

    async def latest_summary(self) -> Summary | None:
        return await alatest_summary(
            conversation_id=self.conversation_id, branch_id=self.branch_id, before_turn_at=self.turn_at
        )

    async def summary_store(self, **fields) -> Summary:
        return await asummary_store(conversation_id=self.conversation_id, run_id=self.run_id, **fields)


def chat_context(*, conversation_id: str, user_id: int, run_id: str, branch_id: str | None, turn_at: datetime,
                 model: str) -> ChatContext:
    """The graph's runtime context for an attempt of the run."""
    return ChatContext(
        conversation_id=conversation_id, user_id=user_id, run_id=run_id, branch_id=branch_id, turn_at=turn_at,
        model=model,
        transcript=LineTranscript(conversation_id=conversation_id, run_id=run_id, branch_id=branch_id, turn_at=turn_at),
    )

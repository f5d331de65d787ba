"""Summaries of a line's earlier turns, written when they no longer fit the model's context."""

from __future__ import annotations

from ..models import Summary
from ..orm import to_async


def summary_store(
    *, conversation_id, run_id, through_message_id, through_turn_at, content: str, turns: int, model: str,
    input_tokens: int | None, output_tokens: int | None,
) -> Summary:
    """A new summary of the line's turns up to `through_message_id`'s (earlier summaries
    stay: other lines may still use them)."""
    return Summary.objects.create(
        conversation_id=conversation_id, run_id=run_id, through_message_id=through_message_id,
        through_turn_at=through_turn_at, content=content, turns=turns, model=model,
        input_tokens=input_tokens, output_tokens=output_tokens,
    )


asummary_store = to_async(summary_store)

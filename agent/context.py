from dataclasses import dataclass
from datetime import datetime

# The checkpoint metadata key naming the Run a checkpoint belongs to.
RUN_METADATA_KEY = "chat_run_id"


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

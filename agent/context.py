from dataclasses import dataclass


@dataclass(frozen=True)
class ChatContext:
    """Typed runtime context of a run; not checkpointed."""

    conversation_id: str
    user_id: int
    run_id: str
    # The line of the conversation the run continues (None: it never forked).
    branch_id: str | None
    # Earlier turns are read from messages created before this one.
    turn_message_id: str

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatContext:
    """Typed runtime context of a run; not checkpointed."""

    conversation_id: str
    user_id: int
    run_id: str
    # Earlier turns are read from messages created before this one.
    turn_message_id: str

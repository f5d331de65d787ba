"""What a socket starts from: the conversation's state now, and the replies being written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..events import REASONING_SUFFIX
from ..models import Approval, Conversation, Message, Run
from .approvals import approvals_with_names
from .runs import active_run


@dataclass
class StreamingReply:
    """A reply the running run is writing and has not stored: its text and reasoning so far."""

    id: str
    run_id: str
    turn_at: datetime | None
    content: str = ""
    # None: no reasoning streamed (as opposed to an empty one).
    reasoning: str | None = None


@dataclass
class ConversationState:
    conversation: Conversation
    run: Run | None
    pending_approvals: list[Approval]
    streaming: list[StreamingReply]


def conversation_state(*, conversation: Conversation, partials: list[dict] = ()) -> ConversationState:
    """The conversation with the line it shows now, its active run and pending approvals.
    `partials` are replies being streamed (events.stream_state): those of the running run
    that are not yet stored are the state's `streaming` replies."""
    run = active_run(conversation_id=conversation.id)
    pending = list(approvals_with_names().filter(conversation=conversation, status=Approval.Status.PENDING))
    conversation.current_branch_id = (
        Conversation.objects.filter(pk=conversation.pk).values_list("current_branch_id", flat=True).first()
    )
    streaming = []
    if run and run.status == Run.Status.RUNNING and partials:
        turn_at = Message.objects.filter(pk=run.user_message_id).values_list("turn_at", flat=True).first()
        streaming = _streaming_replies(partials, run_id=str(run.id), turn_at=turn_at)
        stored = {str(pk) for pk in Message.objects.filter(pk__in=[r.id for r in streaming]).values_list("pk", flat=True)}
        streaming = [reply for reply in streaming if reply.id not in stored]
    return ConversationState(conversation, run, pending, streaming)


def _streaming_replies(partials: list[dict], *, run_id: str, turn_at) -> list[StreamingReply]:
    """The replies the run is writing (events keeps a reply's reasoning as a partial of
    its own)."""
    replies: dict[str, StreamingReply] = {}
    for partial in partials:
        if partial["run_id"] != run_id:
            continue
        message_id, reasoning = partial["message_id"], partial["message_id"].endswith(REASONING_SUFFIX)
        if reasoning:
            message_id = message_id[: -len(REASONING_SUFFIX)]
        reply = replies.setdefault(message_id, StreamingReply(message_id, run_id, turn_at))
        if reasoning:
            reply.reasoning = partial["content"]
        else:
            reply.content = partial["content"]
    return list(replies.values())

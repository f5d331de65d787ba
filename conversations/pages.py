"""The JSON of a line's pages and of a socket's snapshot, each within a size: what
daphne's cap on a websocket message and the API's pages allow."""

from __future__ import annotations

import json

from .models import Approval, Conversation
from .orm import to_async
from .presenters import approval_data, conversation_data, line_message_data, run_data, streaming_reply_data
from .selectors.messages import MESSAGE_PAGE_BYTES, MESSAGE_PAGE_SIZE, LineMessage, MessagePage, message_page
from .selectors.snapshots import conversation_state

# A snapshot frame, as the socket sends it, is at most this: half of daphne's default cap
# on a websocket message (1 MiB), past which it closes the socket instead of sending.
SNAPSHOT_MAX_BYTES = 512 * 1024
# Kept for what the consumer adds (`type`, `seq`), the page's `has_older` and
# `older_cursor` (a cursor is under 300 bytes), and the runs of the page's turns (a
# run's JSON is under 500 bytes, and a page holds at most MESSAGE_PAGE_SIZE turns).
_SNAPSHOT_RESERVE = 1024 + 500 * MESSAGE_PAGE_SIZE


class _Presented:
    """Items presented once: weighed while the page is cut, then sent as weighed."""

    def __init__(self):
        self.data: dict[int, dict] = {}

    def size(self, item: LineMessage | Approval) -> int:
        """Bytes of the item in a JSON list, as json.dumps writes it (ASCII: bytes are characters)."""
        data = self.data[id(item)] = self.of(item)
        return len(json.dumps(data)) + len(", ")

    def of(self, item: LineMessage | Approval) -> dict:
        if id(item) in self.data:
            return self.data[id(item)]
        return approval_data(item) if isinstance(item, Approval) else line_message_data(item)


def message_page_data(
    *, conversation: Conversation, cursor: str = "", limit: int = MESSAGE_PAGE_SIZE,
    max_bytes: int = MESSAGE_PAGE_BYTES, at_least_one: bool = True,
) -> dict:
    """A page of the line shown, oldest first (selectors.messages.message_page):
    `messages`, the `approvals` created among them, the `runs` of their turns, `has_older`
    and `older_cursor`. ValueError for a cursor that names no position."""
    presented = _Presented()
    page = message_page(
        conversation=conversation, size_of=presented.size, cursor=cursor, limit=limit, max_bytes=max_bytes,
        at_least_one=at_least_one,
    )
    return _page_data(page, presented)


def _page_data(page: MessagePage, presented: _Presented) -> dict:
    return {
        "messages": [presented.of(shown) for shown in page.messages],
        "approvals": [presented.of(approval) for approval in page.approvals],
        "runs": [run_data(run) for run in page.runs],
        "has_older": page.older_cursor is not None,
        "older_cursor": page.older_cursor,
    }


def snapshot_data(*, conversation: Conversation, partials: list[dict] = ()) -> dict:
    """What a socket starts from: the latest page of the line shown, within
    SNAPSHOT_MAX_BYTES (`has_older` and `older_cursor` say how to fetch the older pages),
    and a reply being streamed, shown as written so far, after the page."""
    state = conversation_state(conversation=conversation, partials=partials)
    streaming = [streaming_reply_data(reply) for reply in state.streaming]
    snapshot = {
        "conversation": conversation_data(conversation),
        "branch_id": str(conversation.current_branch_id) if conversation.current_branch_id else None,
        "run": run_data(state.run) if state.run else None,
        "approvals": [approval_data(a) for a in state.pending_approvals],
        "messages": streaming,
    }
    page = message_page_data(
        conversation=conversation, max_bytes=SNAPSHOT_MAX_BYTES - _SNAPSHOT_RESERVE - len(json.dumps(snapshot)),
        at_least_one=False,
    )
    return {
        **snapshot,
        "messages": page["messages"] + streaming,  # a streaming reply's run is `run`
        "runs": page["runs"],
        # The approvals of the conversation created since the page's first message, decided
        # ones too, so cards show who decided what; older ones come with older pages.
        "approval_history": page["approvals"],
        "has_older": page["has_older"],
        "older_cursor": page["older_cursor"],
    }


asnapshot_data = to_async(snapshot_data)

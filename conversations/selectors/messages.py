"""Messages of a line: as shown (with their versions), in pages, and as the model's
history reads them."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from django.core.exceptions import ValidationError
from django.db.models import DateTimeField, Q

from agent.context import HistoryRow

from .. import sql
from ..models import MESSAGE_ORDER, Approval, Conversation, Message, Run, Summary
from ..orm import to_async
from .approvals import approvals_with_names
from .branches import Lines, Versions, before_position, conversation_lines
from .runs import runs_of

# A page of messages (a snapshot's, or GET .../messages/?before=&limit=) holds at most
# `limit` messages (MESSAGE_PAGE_SIZE unless asked, MESSAGE_PAGE_MAX at most) and
# MESSAGE_PAGE_BYTES of their JSON, with the approvals created among them.
MESSAGE_PAGE_SIZE = 50
MESSAGE_PAGE_MAX = 200
MESSAGE_PAGE_BYTES = 512 * 1024


@dataclass
class LineMessage:
    """A message as its line shows it: with its versions, when it was edited or
    regenerated (None otherwise)."""

    message: Message
    versions: Versions | None = None


def message_with_versions(message: Message) -> LineMessage:
    """A stored message as a `message` frame gives it: with its versions, when a reply on
    a forked line is a new version of an older one."""
    if message.branch_id is None:
        return LineMessage(message)
    return LineMessage(message, conversation_lines(conversation_id=message.conversation_id).versions(message))


amessage_with_versions = to_async(message_with_versions)


def _on_line(message: Message, lines: Lines) -> LineMessage:
    return LineMessage(message, lines.versions(message) if lines.branches else None)


def message_list(*, conversation: Conversation, lines: Lines | None = None) -> list[LineMessage]:
    """Every message of the line shown, oldest first."""
    lines = lines or conversation_lines(conversation_id=conversation.id)
    messages = lines.messages(conversation.current_branch_id).order_by(*MESSAGE_ORDER)
    return [_on_line(message, lines) for message in messages]


@dataclass
class MessageCursor:
    """Where an older page of a line starts: at the message whose MESSAGE_ORDER values are
    `key` (None: the line's messages were all sent), and approvals created before
    `approvals_before` (None: any)."""

    key: tuple | None
    approvals_before: datetime | None

    def encode(self) -> str:
        key = None if self.key is None else [_cursor_text(value) for value in self.key]
        before = None if self.approvals_before is None else _cursor_text(self.approvals_before)
        return base64.urlsafe_b64encode(json.dumps([key, before]).encode()).decode()

    @classmethod
    def decode(cls, cursor: str) -> "MessageCursor":
        """ValueError if the text names no position."""
        try:
            key, before = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            if key is not None:
                if not isinstance(key, list) or len(key) != len(MESSAGE_ORDER):
                    raise ValueError
                key = tuple(_cursor_value(Message._meta.get_field(name), value) for name, value in zip(MESSAGE_ORDER, key))
            return cls(key, None if before is None else _aware_time(before))
        except (ValueError, TypeError, AttributeError, OverflowError, ValidationError, binascii.Error):
            raise ValueError("invalid cursor") from None


def _cursor_text(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _cursor_value(field, text):
    if not isinstance(text, str):
        raise ValueError
    return _aware_time(text) if isinstance(field, DateTimeField) else field.to_python(text)


def _aware_time(text) -> datetime:
    # In UTC, as the database compares it: OverflowError here, not in the query, for a
    # time that UTC cannot hold.
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError
    return value.astimezone(timezone.utc)


def _at_or_before(key: tuple) -> Q:
    """Messages at or before the position `key` (values of MESSAGE_ORDER) in the order."""
    condition, equal = Q(pk__in=[]), {}
    for i, (name, value) in enumerate(zip(MESSAGE_ORDER, key)):
        lookup = "lte" if i == len(MESSAGE_ORDER) - 1 else "lt"
        condition |= Q(**equal, **{f"{name}__{lookup}": value})
        equal[name] = value
    return condition


# The start of a line: the approvals created before its first message come with it.
_LINE_START = None


@dataclass
class MessagePage:
    """Messages of a line and the approvals created among them, oldest first, with the
    runs of their turns (`runs_of`)."""

    messages: list[LineMessage]
    approvals: list[Approval]
    runs: list[Run]
    # Where the next older page starts; None: this page reaches the line's start.
    older_cursor: str | None


# What an item of a page weighs: the bytes of its JSON, as the edge that sends it makes it.
SizeOf = Callable[[LineMessage | Approval], int]


def message_page(
    *, conversation: Conversation, size_of: SizeOf, cursor: str = "", limit: int = MESSAGE_PAGE_SIZE,
    max_bytes: int = MESSAGE_PAGE_BYTES, at_least_one: bool = True,
) -> MessagePage:
    """The latest messages of the line shown (from `cursor`, an earlier page's
    `older_cursor`) and the approvals created among them: at most `limit` messages and
    `max_bytes` of both by `size_of`, but with `at_least_one` a first message (or
    approval) larger than that alone. Each message and approval of the line is on exactly
    one page: the next one starts where this one stopped. ValueError for a cursor that
    names no position."""
    position = MessageCursor.decode(cursor) if cursor else MessageCursor(key=(), approvals_before=None)
    lines = conversation_lines(conversation_id=conversation.id)
    messages = _newest_messages(lines, conversation.current_branch_id, position.key, limit + 1)
    reaches_start = len(messages) <= limit
    items = messages[:limit] + ([_LINE_START] if reaches_start else [])
    approvals = approvals_with_names().filter(conversation=conversation)
    if position.approvals_before:
        approvals = approvals.filter(created_at__lt=position.approvals_before)
    if not reaches_start:
        approvals = approvals.filter(created_at__gte=min(m.created_at for m in items))
    approvals = list(approvals.order_by("-created_at"))

    page_messages, page_approvals = [], []
    # Bytes used; approvals taken, newest first; the approvals older than `floor` are left.
    used, taken, floor = 0, 0, position.approvals_before
    for item in items:
        # A message brings the approvals created since it.
        covered = taken
        while covered < len(approvals) and (item is _LINE_START or approvals[covered].created_at >= item.created_at):
            covered += 1
        new_approvals = approvals[taken:covered]
        new_messages = [] if item is _LINE_START else [_on_line(item, lines)]
        size = sum(map(size_of, [*new_approvals, *new_messages]))
        if used + size > max_bytes and (used or not at_least_one):
            return _page(page_messages, page_approvals, older=MessageCursor(_key(item), floor))
        used, taken = used + size, covered
        page_approvals += new_approvals
        page_messages += new_messages
        if item is not _LINE_START:
            floor = item.created_at if floor is None else min(floor, item.created_at)
    older = None if reaches_start else MessageCursor(_key(messages[limit]), floor)
    return _page(page_messages, page_approvals, older=older)


def _newest_messages(lines: Lines, branch_id, key: tuple | None, count: int) -> list[Message]:
    """The latest `count` messages of the line at or before `key` (all if empty; none if
    None), newest first."""
    if key is None:
        return []
    queryset = lines.messages(branch_id)
    if key:
        queryset = queryset.filter(_at_or_before(key))
    return list(queryset.order_by(*(f"-{name}" for name in MESSAGE_ORDER))[:count])


def _key(item) -> tuple | None:
    return None if item is _LINE_START else tuple(getattr(item, name) for name in MESSAGE_ORDER)


def _page(messages: list[LineMessage], approvals: list[Approval], *, older: MessageCursor | None) -> MessagePage:
    runs = runs_of([shown.message for shown in messages])
    return MessagePage(messages[::-1], approvals[::-1], runs, older.encode() if older else None)


HISTORY_FIELDS = ("id", "role", "content", "tool_calls", "tool_call_id", "tool_name", "turn_at", "created_at")
# Rows read at a time: the model's history is read newest first until its token budget
# is full, most often in one page.
HISTORY_PAGE = 200


def history_rows(
    *, conversation_id, branch_id, before_turn_at=None, after_turn_at=None, older_than: HistoryRow | None = None,
    newer_than: HistoryRow | None = None, newest_first: bool = True, limit: int = HISTORY_PAGE,
) -> list[HistoryRow]:
    """A page of the line's messages between two turns (exclusive), newest or oldest
    first, continuing after the row `older_than` (or `newer_than`) of the last page."""
    if (branch_id is None and before_turn_at is not None and after_turn_at is None and older_than is None
            and newer_than is None and newest_first):
        rows = sql.history_page(conversation_id, before_turn_at=before_turn_at, limit=limit)
    else:
        lines = conversation_lines(conversation_id=conversation_id) if branch_id else Lines(conversation_id, {})
        queryset = lines.messages(uuid.UUID(str(branch_id)) if branch_id else None)
        if before_turn_at is not None:
            queryset = queryset.filter(turn_at__lt=before_turn_at)
        if after_turn_at is not None:
            queryset = queryset.filter(turn_at__gt=after_turn_at)
        if older_than is not None:
            queryset = queryset.filter(_before_row(older_than))
        if newer_than is not None:
            queryset = queryset.exclude(_before_row(newer_than)).exclude(pk=newer_than.id)
        order = [f"-{name}" for name in MESSAGE_ORDER] if newest_first else MESSAGE_ORDER
        rows = queryset.order_by(*order).values_list(*HISTORY_FIELDS)[:limit]
    return [_history_row(row) for row in rows]


def _before_row(row: HistoryRow) -> Q:
    return before_position((row.turn_at, row.created_at)) | Q(turn_at=row.turn_at, created_at=row.created_at, id__lt=row.id)


def _history_row(row: tuple) -> HistoryRow:
    message_id, role, content, tool_calls, tool_call_id, tool_name, turn_at, created_at = row
    # sql.history_page gets JSON as the driver returns it: text.
    if isinstance(tool_calls, str):
        tool_calls = json.loads(tool_calls)
    return HistoryRow(message_id, role, content, tool_calls or [], tool_call_id, tool_name, turn_at, created_at)


ahistory_rows = to_async(history_rows)


def latest_summary(*, conversation_id, branch_id, before_turn_at) -> Summary | None:
    """The summary of the most turns of the line before this turn, if any."""
    summaries = Summary.objects.filter(conversation_id=conversation_id, through_turn_at__lt=before_turn_at)
    if branch_id:
        lines = conversation_lines(conversation_id=conversation_id)
        summaries = summaries.filter(through_message__in=lines.messages(uuid.UUID(str(branch_id))))
    return summaries.order_by("-through_turn_at", "-created_at").first()


alatest_summary = to_async(latest_summary)


def _client_id_used(*, conversation: Conversation, client_id: str) -> bool:
    return Run.objects.filter(conversation=conversation, client_id=client_id).exists()


_aclient_id_used = to_async(_client_id_used)


async def aclient_id_seen(*, conversation: Conversation, client_id: str | None) -> bool:
    # A send without a client_id has nothing to look up: no hand-off to an ORM thread.
    return bool(client_id) and await _aclient_id_used(conversation=conversation, client_id=client_id)



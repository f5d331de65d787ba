"""Reads. `conversation_for_user` is the one place that fetches a conversation by id
and checks the user may touch it: every HTTP and websocket path goes through it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from django.core.exceptions import ValidationError
from django.db.models.functions import Coalesce
from django.db.models import Count, DateTimeField, Exists, F, IntegerField, OuterRef, Q, Subquery

from agent.context import HistoryRow
from agent.models import Task

from .events import REASONING_SUFFIX
from . import sql
from .orm import to_async
from .models import MESSAGE_ORDER, USAGE_FIELDS, Approval, Branch, Conversation, Message, Run, Summary
from .presenters import approval_data, conversation_data, message_data, run_data, streaming_message_data

PAGE_SIZE = 50

# A page of messages (a snapshot's, or GET .../messages/?before=&limit=) holds at most
# `limit` messages (MESSAGE_PAGE_SIZE unless asked, MESSAGE_PAGE_MAX at most) and
# MESSAGE_PAGE_BYTES of their JSON, with the approvals created among them.
MESSAGE_PAGE_SIZE = 50
MESSAGE_PAGE_MAX = 200
MESSAGE_PAGE_BYTES = 512 * 1024
# A snapshot frame, as the socket sends it, is at most this: half of daphne's default cap
# on a websocket message (1 MiB), past which it closes the socket instead of sending.
SNAPSHOT_MAX_BYTES = 512 * 1024
# Kept for what the consumer adds (`type`, `seq`), the page's `has_older` and
# `older_cursor` (a cursor is under 300 bytes), and the runs of the page's turns (a
# run's JSON is under 500 bytes, and a page holds at most MESSAGE_PAGE_SIZE turns).
_SNAPSHOT_RESERVE = 1024 + 500 * MESSAGE_PAGE_SIZE


class NotFound(Exception):
    """The object does not exist or is not the user's; the caller answers 404."""


def parse_uuid(value) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise NotFound from None


def _with_status(queryset):
    active = Run.objects.filter(conversation=OuterRef("pk"), status__in=Run.ACTIVE).order_by("created_at")
    pending = (
        Approval.objects.filter(conversation=OuterRef("pk"), status=Approval.Status.PENDING)
        .order_by()
        .values("conversation")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return queryset.annotate(
        run_status=Subquery(active.values("status")[:1]),
        pending_approvals=Coalesce(Subquery(pending, output_field=IntegerField()), 0),
    )


def conversation_for_user(*, user, conversation_id) -> Conversation:
    if not getattr(user, "is_authenticated", False):
        raise NotFound
    try:
        return _with_status(Conversation.objects.filter(user=user)).get(pk=parse_uuid(conversation_id))
    except Conversation.DoesNotExist:
        raise NotFound from None


aconversation_for_user = to_async(conversation_for_user)


def run_for_conversation(*, conversation: Conversation, run_id) -> Run:
    try:
        return Run.objects.get(conversation=conversation, pk=parse_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFound from None


arun_for_conversation = to_async(run_for_conversation)


def encode_cursor(conversation: Conversation) -> str:
    raw = json.dumps([conversation.updated_at.isoformat(), str(conversation.id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (time, id) a cursor names; ValueError if it names none."""
    try:
        updated_at, conversation_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # In UTC, as the database compares it: OverflowError here, not in the query, for a
        # time that UTC cannot hold (year 1 at +14:00).
        return datetime.fromisoformat(updated_at).astimezone(timezone.utc), uuid.UUID(conversation_id)
    except (ValueError, TypeError, AttributeError, OverflowError, binascii.Error, json.JSONDecodeError):
        raise ValueError("invalid cursor") from None


def conversation_list(*, user, q: str = "", cursor: str = "", limit: int = PAGE_SIZE) -> dict:
    """A page of the user's conversations, most recently active first."""
    queryset = Conversation.objects.filter(user=user)
    if q:
        matching_message = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=q)
        queryset = queryset.filter(Q(title__icontains=q) | Exists(matching_message))
    if cursor:
        updated_at, last_id = decode_cursor(cursor)
        queryset = queryset.filter(Q(updated_at__lt=updated_at) | Q(updated_at=updated_at, id__lt=last_id))
    page = list(_with_status(queryset).order_by("-updated_at", "-id")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    return {
        "results": [conversation_data(c) for c in page],
        "next": encode_cursor(page[-1]) if has_more else None,
    }


# Where a message stands in its line: (turn_at, created_at), as MESSAGE_ORDER sorts it.
Position = tuple[datetime, datetime]


def _before(position: Position) -> Q:
    """The messages that come before this position in a line."""
    turn_at, created_at = position
    return Q(turn_at__lt=turn_at) | Q(turn_at=turn_at, created_at__lt=created_at)


@dataclass
class Lines:
    """The branches of a conversation as a tree (one query), and the line each one shows.

    A line is its branch's messages after the parent line's messages before its fork
    point, and so on up to the root. A conversation that never forked has no branches:
    its one line is all its messages.
    """

    conversation_id: uuid.UUID
    branches: dict[uuid.UUID, Branch]

    def levels(self, branch_id) -> list[tuple[uuid.UUID, Position | None]]:
        """(branch, its messages before this position, or all) from the line's own branch up."""
        levels, cutoff = [], None
        while branch_id is not None:
            branch = self.branches[branch_id]
            levels.append((branch_id, cutoff))
            cutoff, branch_id = (branch.fork_turn_at, branch.fork_created_at), branch.parent_id
        return levels

    def messages(self, branch_id):
        """The messages of the line, as a queryset."""
        queryset = Message.objects.filter(conversation_id=self.conversation_id)
        if branch_id is None:
            return queryset
        on_line = Q(pk__in=[])
        for level, cutoff in self.levels(branch_id):
            on_line |= Q(branch_id=level) & _before(cutoff) if cutoff else Q(branch_id=level)
        return queryset.filter(on_line)

    def contains(self, branch_id, message: Message) -> bool:
        if branch_id is None:
            return True
        return any(
            message.branch_id == level and (cutoff is None or (message.turn_at, message.created_at) < cutoff)
            for level, cutoff in self.levels(branch_id)
        )

    def position(self, message: Message) -> tuple[uuid.UUID | None, uuid.UUID]:
        """Where a fork at this message goes: (parent line, message it replaces). A message
        that begins a branch stands for the message its branch replaced, so that every
        version of one message is a sibling of the others."""
        branch = self.branches.get(message.branch_id)
        if branch is not None and branch.forked_at_id and branch.first_message_id == message.id:
            return branch.parent_id, branch.forked_at_id
        return message.branch_id, message.id

    def versions(self, message: Message) -> dict | None:
        """The versions of this message: the original and one per fork at it."""
        parent_id, original_id = self.position(message)
        forks = [b for b in self.branches.values() if b.parent_id == parent_id and b.forked_at_id == original_id]
        if not forks:
            return None
        choices = [{"message_id": str(original_id), "branch_id": str(parent_id) if parent_id else None}]
        choices += [
            {"message_id": str(b.first_message_id) if b.first_message_id else None, "branch_id": str(b.id)}
            for b in sorted(forks, key=lambda b: b.created_at)
        ]
        index = next(i for i, c in enumerate(choices) if c["message_id"] == str(message.id))
        return {"index": index, "count": len(choices), "choices": choices}

    def latest_line_through(self, *, message: Message | None = None, branch_id=None) -> uuid.UUID | None:
        """The branch to show for a choice of version: of the lines through the message (or
        from the branch down), the one used last. None: the conversation never forked."""
        if message is not None and not self.branches:
            return None
        if message is not None:
            candidates = [b for b in self.branches.values() if self.contains(b.id, message)]
        else:
            candidates = [b for b in self.branches.values() if branch_id in {level for level, _ in self.levels(b.id)}]
        if not candidates:
            raise NotFound
        return max(candidates, key=lambda b: b.last_active_at).id


def conversation_lines(*, conversation_id) -> Lines:
    first_message = Message.objects.filter(branch=OuterRef("pk")).order_by(*MESSAGE_ORDER).values("pk")[:1]
    branches = Branch.objects.filter(conversation_id=conversation_id).annotate(
        fork_turn_at=F("forked_at__turn_at"), fork_created_at=F("forked_at__created_at"),
        first_message_id=Subquery(first_message),
    )
    return Lines(conversation_id=conversation_id, branches={b.id: b for b in branches})


def message_on_line(*, conversation: Conversation, lines: Lines, message_id) -> Message:
    """A message of the line the conversation shows; NotFound for any other id."""
    try:
        message = Message.objects.get(conversation=conversation, pk=parse_uuid(message_id))
    except Message.DoesNotExist:
        raise NotFound from None
    if not lines.contains(conversation.current_branch_id, message):
        raise NotFound
    return message


def message_frame_data(message: Message) -> dict:
    """A stored message as a `message` frame gives it: with its versions, when a reply
    on a forked line is a new version of an older one."""
    data = message_data(message)
    if message.branch_id is not None:
        if versions := conversation_lines(conversation_id=message.conversation_id).versions(message):
            data["versions"] = versions
    return data


amessage_frame_data = to_async(message_frame_data)


def _message_data(message: Message, lines: Lines) -> dict:
    """A message of a line, with its versions when it was edited or regenerated."""
    data = message_data(message)
    if lines.branches and (versions := lines.versions(message)):
        data["versions"] = versions
    return data


def message_list(*, conversation: Conversation, lines: Lines | None = None) -> list[dict]:
    """Every message of the line shown, oldest first."""
    lines = lines or conversation_lines(conversation_id=conversation.id)
    messages = lines.messages(conversation.current_branch_id).order_by(*MESSAGE_ORDER)
    return [_message_data(message, lines) for message in messages]


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


def _json_size(data) -> int:
    """Bytes of `data` in a JSON list, as json.dumps writes it (ASCII: bytes are characters)."""
    return len(json.dumps(data)) + len(", ")


# The start of a line: the approvals created before its first message come with it.
_LINE_START = None


def message_page(
    *, conversation: Conversation, cursor: str = "", limit: int = MESSAGE_PAGE_SIZE,
    max_bytes: int = MESSAGE_PAGE_BYTES, at_least_one: bool = True,
) -> dict:
    """The latest messages of the line shown (from `cursor`, an earlier page's
    `older_cursor`), oldest first: `messages`, the `approvals` created among them,
    `has_older` and `older_cursor`. At most `limit` messages and `max_bytes` of JSON for
    both, but with `at_least_one` a first message (or approval) larger than that alone.
    Each message and approval of the line is on exactly one page: the next one starts
    where this one stopped. ValueError for a cursor that names no position."""
    position = MessageCursor.decode(cursor) if cursor else MessageCursor(key=(), approvals_before=None)
    lines = conversation_lines(conversation_id=conversation.id)
    messages = _newest_messages(lines, conversation.current_branch_id, position.key, limit + 1)
    reaches_start = len(messages) <= limit
    items = messages[:limit] + ([_LINE_START] if reaches_start else [])
    approvals = _approvals().filter(conversation=conversation)
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
        new_approvals = [approval_data(a) for a in approvals[taken:covered]]
        new_messages = [] if item is _LINE_START else [_message_data(item, lines)]
        size = sum(map(_json_size, new_approvals + new_messages))
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


def _page(messages: list[dict], approvals: list[dict], *, older: MessageCursor | None) -> dict:
    """The page, with the runs of its turns (`runs_of`)."""
    return {
        "messages": messages[::-1],
        "approvals": approvals[::-1],
        "runs": [run_data(run) for run in runs_of(messages)],
        "has_older": older is not None,
        "older_cursor": older.encode() if older else None,
    }


def active_run(*, conversation_id) -> Run | None:
    return Run.objects.filter(conversation_id=conversation_id, status__in=Run.ACTIVE).order_by("created_at").first()


aactive_run = to_async(active_run)


def active_runs(*, conversation_id) -> list[Run]:
    return list(Run.objects.filter(conversation_id=conversation_id, status__in=Run.ACTIVE).order_by("created_at"))


aactive_runs = to_async(active_runs)


def held_runs(*, owner: str) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(id, conversation id) of the queued and running runs this process holds, oldest first."""
    held = Run.objects.filter(owner=owner, status__in=[Run.Status.QUEUED, Run.Status.RUNNING])
    return list(held.order_by("created_at").values_list("id", "conversation_id"))


aheld_runs = to_async(held_runs)


def conversation_snapshot(*, conversation: Conversation, partials: list[dict] = ()) -> dict:
    """What a socket starts from: the latest page of the line shown, within
    SNAPSHOT_MAX_BYTES (`has_older` and `older_cursor` say how to fetch the older pages).
    `partials` are replies being streamed (events.stream_state): the one of the running
    run, not yet stored, is shown as written so far, after the page."""
    run = active_run(conversation_id=conversation.id)
    pending = _approvals().filter(conversation=conversation, status=Approval.Status.PENDING)
    conversation.current_branch_id = (
        Conversation.objects.filter(pk=conversation.pk).values_list("current_branch_id", flat=True).first()
    )
    streaming = []
    if run and run.status == Run.Status.RUNNING and partials:
        turn_at = Message.objects.filter(pk=run.user_message_id).values_list("turn_at", flat=True).first()
        streaming = streaming_messages(partials, run_id=str(run.id), turn_at=turn_at)
        stored = {str(pk) for pk in Message.objects.filter(pk__in=[m["id"] for m in streaming]).values_list("pk", flat=True)}
        streaming = [message for message in streaming if message["id"] not in stored]
    snapshot = {
        "conversation": conversation_data(conversation),
        "branch_id": str(conversation.current_branch_id) if conversation.current_branch_id else None,
        "run": run_data(run) if run else None,
        "approvals": [approval_data(a) for a in pending],
        "messages": streaming,
    }
    page = message_page(
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


aconversation_snapshot = to_async(conversation_snapshot)


def runs_of(messages: list[dict]) -> list[Run]:
    """The runs of the shown turns, oldest first: those that wrote the messages, and every
    run of each user message shown (one that failed before writing anything included)."""
    written = {m["run_id"] for m in messages if m["run_id"] and m["role"] != Message.Role.USER}
    asked = [m["id"] for m in messages if m["role"] == Message.Role.USER]
    return list(Run.objects.filter(Q(pk__in=written) | Q(user_message_id__in=asked)).order_by("created_at"))


def streaming_messages(partials: list[dict], *, run_id: str, turn_at) -> list[dict]:
    """The replies the run is writing, each with its text and reasoning so far (events
    keeps the reasoning as a partial of its own)."""
    replies: dict[str, dict] = {}
    for partial in partials:
        if partial["run_id"] != run_id:
            continue
        message_id, reasoning = partial["message_id"], partial["message_id"].endswith(REASONING_SUFFIX)
        if reasoning:
            message_id = message_id[: -len(REASONING_SUFFIX)]
        reply = replies.setdefault(
            message_id, streaming_message_data({**partial, "message_id": message_id, "content": ""}, turn_at=turn_at)
        )
        reply["reasoning" if reasoning else "content"] = partial["content"]
    return list(replies.values())


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
    return _before((row.turn_at, row.created_at)) | Q(turn_at=row.turn_at, created_at=row.created_at, id__lt=row.id)


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


def _fork_checkpoint(*, run: Run) -> str | None:
    lines = conversation_lines(conversation_id=run.conversation_id)
    turn = Message.objects.filter(pk=run.user_message_id).values_list("turn_at", flat=True).first()
    earlier_user_messages = lines.messages(run.branch_id).filter(role=Message.Role.USER, turn_at__lt=turn)
    earlier = Run.objects.filter(
        user_message__in=earlier_user_messages, branch_id__in=[level for level, _ in lines.levels(run.branch_id)]
    ).exclude(checkpoint_id="")
    return earlier.order_by("-created_at").values_list("checkpoint_id", flat=True).first()


_afork_checkpoint = to_async(_fork_checkpoint)


async def afork_checkpoint(*, run: Run) -> str | None:
    """The checkpoint a new run starts from: the last one of the latest run of its line
    before its message, so each line's graph state continues only from its own past.
    None for a conversation that never forked (no query, no hand-off to an ORM thread):
    it continues from its latest checkpoint."""
    return None if run.branch_id is None else await _afork_checkpoint(run=run)


def _approvals():
    return Approval.objects.select_related("conversation", "decided_by").order_by("created_at")


def approval_for_user(*, user, approval_id) -> Approval:
    """The approval if it exists and its conversation is the user's; NotFound otherwise."""
    if not getattr(user, "is_authenticated", False) or not isinstance(approval_id, str):
        raise NotFound
    try:
        return _approvals().get(pk=approval_id, conversation__user=user)
    except Approval.DoesNotExist:
        raise NotFound from None


APPROVAL_FILTERS = {"all", *Approval.Status.values}


def approval_list(*, user, status: str = "pending") -> list[dict]:
    if status not in APPROVAL_FILTERS:
        raise ValueError(f"'status' is one of {', '.join(sorted(APPROVAL_FILTERS))}")
    queryset = _approvals().filter(conversation__user=user)
    if status != "all":
        queryset = queryset.filter(status=status)
    return [approval_data(a) for a in queryset.order_by("-created_at")]


def approval_resume_values(*, run_id, interrupt_ids: list[str]) -> dict | None:
    """The decisions to resume the run with, by interrupt id; None while any is pending."""
    approvals = list(Approval.objects.filter(run_id=run_id, pk__in=interrupt_ids))
    if len(approvals) < len(interrupt_ids) or any(a.status == Approval.Status.PENDING for a in approvals):
        return None
    decision = {
        Approval.Status.APPROVED: "approve",
        Approval.Status.REJECTED: "reject",
        Approval.Status.EDITED: "edit",
    }
    return {
        a.id: {"decision": decision[a.status], "args": a.edited_args, "comment": a.comment} for a in approvals
    }


aapproval_resume_values = to_async(approval_resume_values)


def task_list(*, user) -> list[dict]:
    return [
        {
            "id": str(task.id),
            "title": task.title,
            "due": task.due.isoformat() if task.due else None,
            "conversation_id": str(task.conversation_id) if task.conversation_id else None,
            "created_at": task.created_at.isoformat(),
        }
        for task in Task.objects.filter(user=user).order_by("-created_at")
    ]


@dataclass
class RunSoFar:
    """What a resumed run had stored before: its messages' ids, and the tokens its stored
    replies and its summaries used, by reply and summary."""

    stored: set[str]
    usage: dict[str, dict]


def run_so_far(*, run_id) -> RunSoFar:
    messages = Message.objects.filter(run_id=run_id).exclude(role=Message.Role.USER).values("id", *USAGE_FIELDS)
    stored, usage = set(), {}
    for row in messages:
        stored.add(str(row["id"]))
        if row["input_tokens"] is not None:
            usage[str(row["id"])] = {name: row[name] or 0 for name in USAGE_FIELDS}
    usage |= {
        f"summary:{row['id']}": {"input_tokens": row["input_tokens"] or 0, "output_tokens": row["output_tokens"] or 0}
        for row in Summary.objects.filter(run_id=run_id).values("id", "input_tokens", "output_tokens")
    }
    return RunSoFar(stored, usage)


arun_so_far = to_async(run_so_far)

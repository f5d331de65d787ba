"""Reads. `conversation_for_user` is the one place that fetches a conversation by id
and checks the user may touch it: every HTTP and websocket path goes through it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models.functions import Coalesce
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery

from .models import Approval, Conversation, Message, Run
from .presenters import approval_data, conversation_data, message_data, run_data, streaming_message_data

PAGE_SIZE = 50


class NotFound(Exception):
    """The object does not exist or is not the user's; the caller answers 404."""


def _parse_uuid(value) -> uuid.UUID:
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
        return _with_status(Conversation.objects.filter(user=user)).get(pk=_parse_uuid(conversation_id))
    except Conversation.DoesNotExist:
        raise NotFound from None


aconversation_for_user = sync_to_async(conversation_for_user)


def run_for_conversation(*, conversation: Conversation, run_id) -> Run:
    try:
        return Run.objects.get(conversation=conversation, pk=_parse_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFound from None


arun_for_conversation = sync_to_async(run_for_conversation)


def encode_cursor(conversation: Conversation) -> str:
    raw = json.dumps([conversation.updated_at.isoformat(), str(conversation.id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        updated_at, conversation_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(updated_at), uuid.UUID(conversation_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
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


def message_list(*, conversation: Conversation) -> list[dict]:
    return [message_data(m) for m in Message.objects.filter(conversation=conversation).order_by("created_at", "id")]


def active_run(*, conversation_id) -> Run | None:
    return Run.objects.filter(conversation_id=conversation_id, status__in=Run.ACTIVE).order_by("created_at").first()


aactive_run = sync_to_async(active_run)


def active_runs(*, conversation_id) -> list[Run]:
    return list(Run.objects.filter(conversation_id=conversation_id, status__in=Run.ACTIVE).order_by("created_at"))


aactive_runs = sync_to_async(active_runs)


def conversation_snapshot(*, conversation: Conversation, partials: list[dict] = ()) -> dict:
    """What a socket starts from. `partials` are replies being streamed (events.stream_state):
    the one of the running run, not yet stored, is shown as written so far."""
    run = active_run(conversation_id=conversation.id)
    approvals = list(_approvals().filter(conversation=conversation))
    messages = message_list(conversation=conversation)
    stored = {m["id"] for m in messages}
    for partial in partials:
        if run and run.status == Run.Status.RUNNING and partial["run_id"] == str(run.id) and partial["message_id"] not in stored:
            messages.append(streaming_message_data(partial))
    return {
        "conversation": conversation_data(conversation),
        "messages": messages,
        "run": run_data(run) if run else None,
        "approvals": [approval_data(a) for a in approvals if a.status == Approval.Status.PENDING],
        # Every approval of the conversation, decided ones too, so cards show who decided what.
        "approval_history": [approval_data(a) for a in approvals],
    }


aconversation_snapshot = sync_to_async(conversation_snapshot)


async def atranscript_before(*, conversation_id: str, message_id: str) -> list[Message]:
    """The user and assistant messages before `message_id`, the latest CHAT_HISTORY_MESSAGES."""
    turn = await Message.objects.filter(pk=message_id).values_list("created_at", flat=True).afirst()
    queryset = Message.objects.filter(
        conversation_id=conversation_id, role__in=[Message.Role.USER, Message.Role.ASSISTANT]
    ).exclude(content="")
    if turn is not None:
        queryset = queryset.filter(created_at__lt=turn)
    latest = [m async for m in queryset.order_by("-created_at", "-id")[: settings.CHAT_HISTORY_MESSAGES]]
    return latest[::-1]


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


aapproval_resume_values = sync_to_async(approval_resume_values)


def task_list(*, user) -> list[dict]:
    from agent.models import Task

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

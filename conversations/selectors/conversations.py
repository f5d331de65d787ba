"""Conversations: the one lookup by id that checks the owner, and the sidebar's pages."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from ..errors import NotFound
from ..models import Approval, Conversation, Message, Run
from ..orm import to_async

PAGE_SIZE = 50


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


def conversation_exists(*, conversation_id) -> bool:
    return Conversation.objects.filter(pk=conversation_id).exists()


aconversation_exists = to_async(conversation_exists)


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


@dataclass
class ConversationPage:
    conversations: list[Conversation]
    # Where the next page starts; None: this is the last.
    next_cursor: str | None


def conversation_list(*, user, q: str = "", cursor: str = "", limit: int = PAGE_SIZE) -> ConversationPage:
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
    return ConversationPage(page, encode_cursor(page[-1]) if has_more else None)

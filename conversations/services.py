"""Writes. Each returns what changed; callers publish events after it is committed."""

from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Conversation, Message, Run
from .rendering import render_markdown

TITLE_MAX_CHARS = 200
AUTO_TITLE_CHARS = 60


class Conflict(Exception):
    """The change is not allowed in the object's current state."""


def conversation_create(*, user, title: str = "") -> Conversation:
    return Conversation.objects.create(user=user, title=title.strip()[:TITLE_MAX_CHARS])


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    conversation.title = title.strip()[:TITLE_MAX_CHARS]
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


async def aconversation_delete(*, conversation: Conversation, checkpointer) -> None:
    """Delete the conversation with its messages, runs and checkpoints."""
    await checkpointer.adelete_thread(str(conversation.id))
    await Conversation.objects.filter(pk=conversation.pk).adelete()


def message_send(*, conversation: Conversation, content: str, client_id: str | None) -> tuple[Message, Run, bool]:
    """Store the user's message and a queued run in one transaction.

    The same client_id again returns the first message and run, and creates nothing.
    """
    if client_id:
        existing = Run.objects.filter(conversation=conversation, client_id=client_id).select_related("user_message").first()
        if existing:
            return existing.user_message, existing, False
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation, role=Message.Role.USER, content=content, html=render_markdown(content)
            )
            run = Run.objects.create(conversation=conversation, user_message=message, client_id=client_id or None)
            message.run = run
            message.save(update_fields=["run"])
            fields = {"updated_at": timezone.now()}
            if not conversation.title:
                fields["title"] = " ".join(content.split())[:AUTO_TITLE_CHARS]
            Conversation.objects.filter(pk=conversation.pk).update(**fields)
    except IntegrityError:
        # Another socket stored the same client_id a moment ago.
        existing = Run.objects.select_related("user_message").get(conversation=conversation, client_id=client_id)
        return existing.user_message, existing, False
    return message, run, True


amessage_send = sync_to_async(message_send)


def graph_message_id(conversation_id, langchain_id: str) -> uuid.UUID:
    """The Message id of a graph message: stable, so token frames and the stored row agree."""
    try:
        return uuid.UUID(langchain_id)
    except ValueError:
        return uuid.uuid5(uuid.UUID(str(conversation_id)), langchain_id)


async def arun_claim(*, run_id) -> Run | None:
    """queued → running; None if another worker has it or it is no longer queued."""
    claimed = await Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).aupdate(
        status=Run.Status.RUNNING, started_at=timezone.now()
    )
    return await Run.objects.aget(pk=run_id) if claimed else None


async def arun_finish(*, run_id, status: str, error: str | None = None) -> Run:
    await Run.objects.filter(pk=run_id, status__in=Run.ACTIVE).aupdate(
        status=status, error=error, finished_at=timezone.now()
    )
    run = await Run.objects.aget(pk=run_id)
    await Conversation.objects.filter(pk=run.conversation_id).aupdate(updated_at=timezone.now())
    return run


def message_store(
    *,
    message_id: uuid.UUID,
    conversation_id,
    run_id,
    role: str,
    content: str,
    tool_calls: list | None = None,
    tool_call_id: str = "",
    tool_name: str = "",
    stopped: bool = False,
) -> Message:
    """Insert or update one message of a run (idempotent: keyed by its stable id)."""
    message, _ = Message.objects.update_or_create(
        pk=message_id,
        defaults={
            "conversation_id": conversation_id,
            "run_id": run_id,
            "role": role,
            "content": content,
            "html": render_markdown(content),
            "tool_calls": tool_calls or [],
            "tool_call_id": tool_call_id,
            "tool_name": tool_name,
            "stopped": stopped,
        },
    )
    return message


amessage_store = sync_to_async(message_store)

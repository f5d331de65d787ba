"""Conversations: create, rename or choose a model, delete; and the lock that makes one
conversation's sends, forks and switches go one at a time."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .. import events, sql
from ..errors import Invalid, NotFound
from ..models import Conversation
from ..orm import to_async
from ..presenters import conversation_data

TITLE_MAX_CHARS = 200


def conversation_create(*, user, title: str = "", model: str = "") -> Conversation:
    return Conversation.objects.create(user=user, title=title.strip()[:TITLE_MAX_CHARS], model=_offered(model))


def conversation_update(*, conversation: Conversation, title: str | None = None, model: str | None = None) -> Conversation:
    """Rename the conversation, or choose the model that answers its next turns."""
    changed = ["updated_at"]
    if title is not None:
        conversation.title = title.strip()[:TITLE_MAX_CHARS]
        changed.append("title")
    if model is not None:
        conversation.model = _offered(model)
        changed.append("model")
    conversation.save(update_fields=changed)
    return conversation


_aconversation_update = to_async(conversation_update)


async def aconversation_update(*, conversation: Conversation, **changes) -> Conversation:
    """`conversation_update`; its other tabs are sent the new title or model at once."""
    conversation = await _aconversation_update(conversation=conversation, **changes)
    await events.publish(conversation.id, {"type": "conversation", "conversation": conversation_data(conversation)})
    return conversation


def _offered(model: str) -> str:
    """A model users may choose (CHAT_MODELS), or "" for the default."""
    if model and model not in settings.CHAT_MODELS:
        raise Invalid(f"'model' is one of {', '.join(settings.CHAT_MODELS)}")
    return model


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete the conversation with everything of it: messages, runs, approvals, branches,
    tasks, the tool ledger and its checkpoints. Once that is committed its runs stop and
    its sockets are closed, wherever they are (conversations.signals).

    Locked first, as a send locks it: a turn stored meanwhile is deleted with the rest
    instead of failing the delete, and a run's write that names the conversation waits
    for the delete, then finds it gone (RunGone)."""
    with transaction.atomic():
        list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))
        Conversation.objects.filter(pk=conversation.pk).delete()


aconversation_delete = to_async(conversation_delete)


def conversation_lock(conversation: Conversation) -> Conversation:
    """The conversation locked until the transaction ends (so that sends, forks and
    switches of one conversation go one at a time), with its runs' state; NotFound if it
    was deleted meanwhile."""
    try:
        return sql.conversation_locked(conversation.pk)
    except Conversation.DoesNotExist:
        raise NotFound from None

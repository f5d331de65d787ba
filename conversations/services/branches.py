"""Branches: forking a line at a message (edit, regenerate, retry) and showing another
version. Callers hold the conversation's lock (`conversation_lock`)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .. import events
from ..errors import Conflict, NotFound
from ..models import Branch, Conversation, Message, Run
from ..orm import to_async
from ..selectors.branches import Lines, conversation_lines, message_on_line
from ..selectors.conversations import parse_uuid
from .conversations import conversation_lock

FORK_WHILE_ACTIVE = "a reply is in progress or waits for approval: stop it first"


def conversation_require_idle(locked: Conversation) -> None:
    """Conflict unless no run is active; `locked` was read by `conversation_lock`, which
    tells whether one is."""
    if locked.busy:
        raise Conflict(FORK_WHILE_ACTIVE)


def branch_fork_point(conversation: Conversation, at_message_id) -> tuple[Lines, Message]:
    """The message of the shown line to fork at, once no run is active. The first fork
    turns the conversation's one line into the root branch."""
    conversation_require_idle(conversation)
    if conversation.current_branch_id is None:
        root = Branch.objects.create(conversation=conversation)
        Message.objects.filter(conversation=conversation, branch__isnull=True).update(branch=root)
        Run.objects.filter(conversation=conversation, branch__isnull=True).update(branch=root)
        conversation.current_branch = root
    lines = conversation_lines(conversation_id=conversation.id)
    message = message_on_line(conversation=conversation, lines=lines, message_id=at_message_id)
    return lines, message


def branch_create(conversation: Conversation, lines: Lines, replaced: Message) -> Branch:
    """A new branch that replaces the message (keeping what came before it), shown."""
    parent_id, forked_at_id = lines.position(replaced)
    branch = Branch.objects.create(conversation=conversation, parent_id=parent_id, forked_at_id=forked_at_id)
    _show(conversation, branch.id)
    return branch


def _show(conversation: Conversation, branch_id) -> None:
    now = timezone.now()
    Branch.objects.filter(pk=branch_id).update(last_active_at=now)
    Conversation.objects.filter(pk=conversation.pk).update(current_branch_id=branch_id, updated_at=now)
    conversation.current_branch_id = branch_id


def branch_switch(*, conversation: Conversation, message_id=None, branch_id=None) -> None:
    """Show another version: the line through the message (or from the branch down)
    that was used last."""
    with transaction.atomic():
        locked = conversation_lock(conversation)
        conversation_require_idle(locked)
        lines = conversation_lines(conversation_id=locked.id)
        if message_id is not None:
            try:
                message = Message.objects.get(conversation=locked, pk=parse_uuid(message_id))
            except Message.DoesNotExist:
                raise NotFound from None
            chosen = lines.latest_line_through(message=message)
        else:
            branch = lines.branches.get(parse_uuid(branch_id))
            if branch is None:
                raise NotFound
            chosen = lines.latest_line_through(branch_id=branch.id)
        _show(locked, chosen)


_abranch_switch = to_async(branch_switch)


async def abranch_switch(*, conversation: Conversation, **choice) -> None:
    """`branch_switch`, then the line it shows to every socket of the conversation."""
    await _abranch_switch(conversation=conversation, **choice)
    await events.publish_resync(conversation.id)

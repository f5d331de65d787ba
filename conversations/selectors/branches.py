"""Branches as a tree, and the line of messages each one shows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F, OuterRef, Q, Subquery

from ..errors import NotFound
from ..models import MESSAGE_ORDER, Branch, Conversation, Message, Run
from ..orm import to_async
from .conversations import parse_uuid


@dataclass
class Version:
    """One version of a message: the message that begins it (None: a branch that has no
    message yet), and the branch that shows it (None: the conversation's first line)."""

    message_id: uuid.UUID | None
    branch_id: uuid.UUID | None


@dataclass
class Versions:
    """The versions of a message, oldest first, and which of them it is."""

    index: int
    choices: list[Version]


# Where a message stands in its line: (turn_at, created_at), as MESSAGE_ORDER sorts it.
Position = tuple[datetime, datetime]


def before_position(position: Position) -> Q:
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
            on_line |= Q(branch_id=level) & before_position(cutoff) if cutoff else Q(branch_id=level)
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

    def versions(self, message: Message) -> Versions | None:
        """The versions of this message: the original and one per fork at it."""
        parent_id, original_id = self.position(message)
        forks = [b for b in self.branches.values() if b.parent_id == parent_id and b.forked_at_id == original_id]
        if not forks:
            return None
        choices = [Version(original_id, parent_id)]
        choices += [Version(b.first_message_id, b.id) for b in sorted(forks, key=lambda b: b.created_at)]
        index = next(i for i, choice in enumerate(choices) if str(choice.message_id) == str(message.id))
        return Versions(index, choices)

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



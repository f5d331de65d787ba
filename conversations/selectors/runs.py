"""Runs as the chat reads them: the active ones, those this process holds, what a
resumed run had stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q

from ..errors import NotFound
from ..models import USAGE_FIELDS, Conversation, Message, Run, Summary
from ..orm import to_async
from .conversations import parse_uuid


def run_for_conversation(*, conversation: Conversation, run_id) -> Run:
    try:
        return Run.objects.get(conversation=conversation, pk=parse_uuid(run_id))
    except Run.DoesNotExist:
        raise NotFound from None


arun_for_conversation = to_async(run_for_conversation)


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


def runs_of(messages: list[Message]) -> list[Run]:
    """The runs of the shown turns, oldest first: those that wrote the messages, and every
    run of each user message shown (one that failed before writing anything included)."""
    written = {m.run_id for m in messages if m.run_id and m.role != Message.Role.USER}
    asked = [m.id for m in messages if m.role == Message.Role.USER]
    return list(Run.objects.filter(Q(pk__in=written) | Q(user_message_id__in=asked)).order_by("created_at"))


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

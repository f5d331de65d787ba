"""Turns: a user's message and the run that answers it. Send, edit (a new branch with
the edited message), regenerate (a new branch for the reply) and retry, each in one
transaction on the locked conversation, once per client_id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import events, sql
from ..errors import Conflict, Invalid, NotFound
from ..models import MESSAGE_ORDER, Conversation, Message, Run
from ..orm import to_async
from ..presenters import message_data, run_data
from ..rendering import html_to_store
from ..runs.transitions import StartedRun, run_queue, run_queue_started
from ..selectors.branches import conversation_lines, message_on_line
from ..selectors.conversations import parse_uuid
from .branches import branch_create, branch_fork_point, conversation_require_idle
from .conversations import conversation_lock

AUTO_TITLE_CHARS = 60


@dataclass(frozen=True)
class Accepted:
    """A turn accepted: the user message a run answers, and that run."""

    message: Message
    run: Run
    # False: this client_id was accepted before, and nothing was stored now.
    created: bool = True
    # The run's first attempt, begun in the same transaction (no other run of the
    # conversation was active); None: it is queued.
    started: StartedRun | None = None


def message_send(
    *, conversation: Conversation, content: str, client_id: str | None, owner: str, reject_if_busy: bool = False
) -> Accepted:
    """Store the user's message on the line the conversation shows, and its run, in one
    transaction: running at once if no other run of the conversation is active, else
    queued behind them.

    The same client_id again returns the first message and run, and creates nothing.
    With reject_if_busy, a conversation with an active run refuses the message (Conflict).
    """
    def store(locked: Conversation) -> Accepted:
        if reject_if_busy and locked.busy:
            raise Conflict("a reply is in progress: wait for it, or stop it first")
        if locked.queued_runs >= settings.RUN_QUEUE_MAX:
            raise Conflict(f"{settings.RUN_QUEUE_MAX} messages already wait for a reply here: wait for them, or stop them")
        return _store_turn(
            locked, content=content, client_id=client_id, owner=owner, branch_id=locked.current_branch_id,
            start=not locked.busy,
            follows_a_finished_graph=locked.current_branch_id is None and locked.latest_run_status == Run.Status.SUCCEEDED,
        )

    return _once_per_client_id(conversation, client_id, store)


def _once_per_client_id(conversation: Conversation, client_id: str | None, store) -> Accepted:
    """Run `store` on the locked conversation; if this client_id was stored before, return
    the first message and run instead, and create nothing. Not looked up first: the socket
    has just done so (selectors.messages.aclient_id_seen, to count only new messages
    against the limit), so a repeat is rare, and the unique (conversation, client_id) refuses its run."""
    try:
        with transaction.atomic():
            locked = conversation_lock(conversation)
            locked.queued_runs = locked.queued_runs or 0
            accepted = store(locked)
    except IntegrityError:
        # Stored before, or by another socket a moment ago; any other violation is raised.
        existing = client_id and Run.objects.select_related("user_message").filter(
            conversation=conversation, client_id=client_id
        ).first()
        if not existing:
            raise
        return Accepted(existing.user_message, existing, created=False)
    return accepted


def _store_turn(
    conversation: Conversation, *, content: str, client_id: str | None, owner: str, branch_id, start: bool = False,
    follows_a_finished_graph: bool = False,
) -> Accepted:
    """The user's message and its run: queued, or with `start` running at once."""
    # The message names its run before the run exists: foreign keys are checked at commit.
    run_id = uuid.uuid4()
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.USER,
        content=content,
        html=html_to_store(content),
        branch_id=branch_id,
        run_id=run_id,
        turn_at=timezone.now(),
    )
    fields = {"run_id": run_id, "user_message": message, "client_id": client_id, "owner": owner, "branch_id": branch_id}
    if start:
        started = run_queue_started(conversation, **fields, follows_a_finished_graph=follows_a_finished_graph)
        message.run = started.run
    else:
        started, message.run = None, run_queue(conversation, **fields)
    sql.conversation_turn_stored(conversation.pk, now=timezone.now(), title=" ".join(content.split())[:AUTO_TITLE_CHARS])
    return Accepted(message, message.run, started=started)


_amessage_send = to_async(message_send)


async def amessage_send(**fields) -> Accepted:
    """`message_send`, then its message and run to every socket of the conversation."""
    accepted = await _amessage_send(**fields)
    if accepted.created:
        await events.publish(accepted.run.conversation_id, *_accepted_frames(accepted))
    return accepted


def _accepted_frames(accepted: Accepted) -> list[dict]:
    run = run_data(accepted.run)
    frames = [{"type": "message", "message": message_data(accepted.message)}, {"type": "run", "run": run}]
    if accepted.started:  # accepted and started in one step: both are reported
        frames.insert(1, {"type": "run", "run": {**run, "status": Run.Status.QUEUED}})
    return frames


def _forking(service):
    """The service as a coroutine function that sends every socket of the conversation
    the line as it is now, once the fork it stored is committed."""
    on_a_thread = to_async(service)

    async def forked(**fields) -> Accepted:
        accepted = await on_a_thread(**fields)
        if accepted.created:
            await events.publish_resync(accepted.run.conversation_id)
        return accepted

    return forked


def message_edit(
    *, conversation: Conversation, message_id, content: str, client_id: str | None, owner: str
) -> Accepted:
    """Edit an earlier user message: a new branch with the edited message, and a run."""

    def store(locked: Conversation) -> Accepted:
        lines, edited = branch_fork_point(locked, message_id)
        if edited.role != Message.Role.USER:
            raise Invalid("only your own messages can be edited; regenerate a reply instead")
        branch = branch_create(locked, lines, edited)
        return _store_turn(locked, content=content, client_id=client_id, owner=owner, branch_id=branch.id)

    return _once_per_client_id(conversation, client_id, store)


amessage_edit = _forking(message_edit)


def reply_regenerate(*, conversation: Conversation, message_id, client_id: str | None, owner: str) -> Accepted:
    """Write a reply again: a new branch that keeps the user's message and replaces the
    turn's reply (from its first message: tool calls too), and a run for it."""

    def store(locked: Conversation) -> Accepted:
        lines, reply = branch_fork_point(locked, message_id)
        if reply.role != Message.Role.ASSISTANT or reply.run is None or reply.run.user_message is None:
            raise Invalid("only an assistant's reply can be regenerated")
        user_message = reply.run.user_message
        first_reply = Message.objects.filter(run=reply.run).exclude(role=Message.Role.USER).order_by(*MESSAGE_ORDER).first()
        branch = branch_create(locked, lines, first_reply)
        run = run_queue(locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch.id)
        return Accepted(user_message, run)

    return _once_per_client_id(conversation, client_id, store)


areply_regenerate = _forking(reply_regenerate)


def run_retry(*, conversation: Conversation, run_id, client_id: str | None, owner: str) -> Accepted:
    """Answer the last turn of the shown line again after its run failed or was stopped:
    a new run for its message; one that had written something is kept as a version
    (a new branch from its first reply, as regenerate makes)."""

    def store(locked: Conversation) -> Accepted:
        conversation_require_idle(locked)
        try:
            run = Run.objects.select_related("user_message").get(conversation=locked, pk=parse_uuid(run_id))
        except Run.DoesNotExist:
            raise NotFound from None
        if run.status not in (Run.Status.FAILED, Run.Status.CANCELLED) or run.user_message is None:
            raise Invalid("only a reply that failed or was stopped can be retried")
        if Run.objects.filter(user_message_id=run.user_message_id, created_at__gt=run.created_at).exists():
            raise Invalid("this reply was written again since: retry the latest one")
        lines = conversation_lines(conversation_id=locked.id)
        user_message = message_on_line(conversation=locked, lines=lines, message_id=run.user_message_id)
        user_message.conversation = locked  # the run starts at once: its executor reads it
        if lines.messages(locked.current_branch_id).filter(turn_at__gt=user_message.turn_at).exists():
            raise Invalid("only the last turn can be retried: edit or regenerate an earlier one")
        written = Message.objects.filter(run=run).exclude(role=Message.Role.USER).order_by(*MESSAGE_ORDER).first()
        if written is None:
            branch_id = locked.current_branch_id
        else:
            lines, first_reply = branch_fork_point(locked, written.id)
            branch_id = branch_create(locked, lines, first_reply).id
        started = run_queue_started(
            locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch_id
        )
        return Accepted(user_message, started.run, started=started)

    return _once_per_client_id(conversation, client_id, store)


arun_retry = _forking(run_retry)



"""Writes. Each returns what changed; callers publish events after it is committed.
A run's own transitions are conversations.runs.transitions."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from agent.context import RunGone
from agent.tools import TOOLS

from . import selectors, sql
from .orm import to_async
from .models import MESSAGE_ORDER, Approval, Branch, Conversation, Message, Run, Summary
from .runs.transitions import StartedRun, run_queue, run_resume
from .selectors import approval_for_user
from .rendering import html_to_store

TITLE_MAX_CHARS = 200
# JSON and URLs carry them, no database stores them: PostgreSQL refuses NUL, and a lone
# surrogate has no UTF-8 encoding.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
AUTO_TITLE_CHARS = 60


def unstorable(value) -> bool:
    """Whether a string anywhere in this JSON value holds NUL or a lone surrogate.
    A loop, not recursion: a deep frame must not blow the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class Conflict(Exception):
    """The change is not allowed in the object's current state."""


class Invalid(Exception):
    """The request is malformed or breaks a rule; nothing was changed."""


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
        message, run = _store_turn(
            locked, content=content, client_id=client_id, owner=owner, branch_id=locked.current_branch_id,
            start=not locked.busy,
        )
        if locked.busy:
            return Accepted(message, run)
        follows_a_finished_graph = (
            locked.current_branch_id is None and locked.latest_run_status == Run.Status.SUCCEEDED
        )
        return Accepted(message, run, started=StartedRun(run, first_start=True, follows_a_finished_graph=follows_a_finished_graph))

    return _once_per_client_id(conversation, client_id, store)


def _locked_read(conversation: Conversation) -> Conversation:
    """The conversation locked (so that sends, forks and switches of one conversation go one
    at a time), with its runs' state; NotFound if it was deleted meanwhile."""
    try:
        return sql.conversation_locked(conversation.pk)
    except Conversation.DoesNotExist:
        raise selectors.NotFound from None


def _once_per_client_id(conversation: Conversation, client_id: str | None, store) -> Accepted:
    """Run `store` on the locked conversation; if this client_id was stored before, return
    the first message and run instead, and create nothing. Not looked up first: the socket
    has just done so (selectors.aclient_id_seen, to count only new messages against the
    limit), so a repeat is rare, and the unique (conversation, client_id) refuses its run."""
    try:
        with transaction.atomic():
            locked = _locked_read(conversation)
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
    conversation: Conversation, *, content: str, client_id: str | None, owner: str, branch_id, start: bool = False
) -> tuple[Message, Run]:
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
    message.run = run = run_queue(
        conversation, run_id=run_id, user_message=message, client_id=client_id, owner=owner, branch_id=branch_id,
        start=start,
    )
    sql.conversation_turn_stored(conversation.pk, now=timezone.now(), title=" ".join(content.split())[:AUTO_TITLE_CHARS])
    return message, run


amessage_send = to_async(message_send)


FORK_WHILE_ACTIVE = "a reply is in progress or waits for approval: stop it first"


def _idle(locked: Conversation) -> None:
    """`locked` was read with sql.conversation_locked, which tells whether a run is active."""
    if locked.busy:
        raise Conflict(FORK_WHILE_ACTIVE)


def _fork(conversation: Conversation, at_message_id) -> tuple[selectors.Lines, Message]:
    """The message of the shown line to fork at, once no run is active. The first fork
    turns the conversation's one line into the root branch."""
    _idle(conversation)
    if conversation.current_branch_id is None:
        root = Branch.objects.create(conversation=conversation)
        Message.objects.filter(conversation=conversation, branch__isnull=True).update(branch=root)
        Run.objects.filter(conversation=conversation, branch__isnull=True).update(branch=root)
        conversation.current_branch = root
    lines = selectors.conversation_lines(conversation_id=conversation.id)
    message = selectors.message_on_line(conversation=conversation, lines=lines, message_id=at_message_id)
    return lines, message


def _branch_at(conversation: Conversation, lines: selectors.Lines, replaced: Message) -> Branch:
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


def message_edit(
    *, conversation: Conversation, message_id, content: str, client_id: str | None, owner: str
) -> Accepted:
    """Edit an earlier user message: a new branch with the edited message, and a run."""

    def store(locked: Conversation) -> Accepted:
        lines, edited = _fork(locked, message_id)
        if edited.role != Message.Role.USER:
            raise Invalid("only your own messages can be edited; regenerate a reply instead")
        branch = _branch_at(locked, lines, edited)
        return Accepted(*_store_turn(locked, content=content, client_id=client_id, owner=owner, branch_id=branch.id))

    return _once_per_client_id(conversation, client_id, store)


amessage_edit = to_async(message_edit)


def reply_regenerate(*, conversation: Conversation, message_id, client_id: str | None, owner: str) -> Accepted:
    """Write a reply again: a new branch that keeps the user's message and replaces the
    turn's reply (from its first message: tool calls too), and a run for it."""

    def store(locked: Conversation) -> Accepted:
        lines, reply = _fork(locked, message_id)
        if reply.role != Message.Role.ASSISTANT or reply.run is None or reply.run.user_message is None:
            raise Invalid("only an assistant's reply can be regenerated")
        user_message = reply.run.user_message
        first_reply = Message.objects.filter(run=reply.run).exclude(role=Message.Role.USER).order_by(*MESSAGE_ORDER).first()
        branch = _branch_at(locked, lines, first_reply)
        run = run_queue(locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch.id)
        return Accepted(user_message, run)

    return _once_per_client_id(conversation, client_id, store)


areply_regenerate = to_async(reply_regenerate)


def run_retry(*, conversation: Conversation, run_id, client_id: str | None, owner: str) -> Accepted:
    """Answer the last turn of the shown line again after its run failed or was stopped:
    a new run for its message; one that had written something is kept as a version
    (a new branch from its first reply, as regenerate makes)."""

    def store(locked: Conversation) -> Accepted:
        _idle(locked)
        try:
            run = Run.objects.select_related("user_message").get(conversation=locked, pk=selectors.parse_uuid(run_id))
        except Run.DoesNotExist:
            raise selectors.NotFound from None
        if run.status not in (Run.Status.FAILED, Run.Status.CANCELLED) or run.user_message is None:
            raise Invalid("only a reply that failed or was stopped can be retried")
        if Run.objects.filter(user_message_id=run.user_message_id, created_at__gt=run.created_at).exists():
            raise Invalid("this reply was written again since: retry the latest one")
        lines = selectors.conversation_lines(conversation_id=locked.id)
        user_message = selectors.message_on_line(conversation=locked, lines=lines, message_id=run.user_message_id)
        user_message.conversation = locked  # the run starts at once: its executor reads it
        if lines.messages(locked.current_branch_id).filter(turn_at__gt=user_message.turn_at).exists():
            raise Invalid("only the last turn can be retried: edit or regenerate an earlier one")
        written = Message.objects.filter(run=run).exclude(role=Message.Role.USER).order_by(*MESSAGE_ORDER).first()
        if written is None:
            branch_id = locked.current_branch_id
        else:
            lines, first_reply = _fork(locked, written.id)
            branch_id = _branch_at(locked, lines, first_reply).id
        run = run_queue(
            locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch_id, start=True
        )
        return Accepted(user_message, run, started=StartedRun(run, first_start=True))

    return _once_per_client_id(conversation, client_id, store)


arun_retry = to_async(run_retry)


def branch_switch(*, conversation: Conversation, message_id=None, branch_id=None) -> None:
    """Show another version: the line through the message (or from the branch down)
    that was used last."""
    with transaction.atomic():
        locked = _locked_read(conversation)
        _idle(locked)
        lines = selectors.conversation_lines(conversation_id=locked.id)
        if message_id is not None:
            try:
                message = Message.objects.get(conversation=locked, pk=selectors.parse_uuid(message_id))
            except Message.DoesNotExist:
                raise selectors.NotFound from None
            chosen = lines.latest_line_through(message=message)
        else:
            branch = lines.branches.get(selectors.parse_uuid(branch_id))
            if branch is None:
                raise selectors.NotFound
            chosen = lines.latest_line_through(branch_id=branch.id)
        _show(locked, chosen)


abranch_switch = to_async(branch_switch)


def graph_message_id(conversation_id, langchain_id: str) -> uuid.UUID:
    """The Message id of a graph message: stable, so token frames and the stored row agree."""
    try:
        return uuid.UUID(langchain_id)
    except ValueError:
        return uuid.uuid5(uuid.UUID(str(conversation_id)), langchain_id)


def approval_create(*, interrupt_id: str, run_id, conversation_id, request: dict) -> Approval | None:
    """Record an interrupt of the graph as a pending approval; None if it is already
    recorded. RunGone if its run was deleted."""
    try:
        approval, created = Approval.objects.get_or_create(
            pk=interrupt_id,
            defaults={
                "conversation_id": conversation_id,
                "run_id": run_id,
                "tool_call_id": request["tool_call_id"],
                "tool": request["tool"],
                "args": request["args"],
                "description": request["description"],
                "allowed": request["allowed"],
            },
        )
    except IntegrityError:  # not there, and refused: what it names was deleted
        raise RunGone(run_id) from None
    return Approval.objects.select_related("conversation", "decided_by").get(pk=approval.pk) if created else None


aapproval_create = to_async(approval_create)

COMMENT_MAX_CHARS = 2000
DECIDED_STATUS = {
    Approval.Decision.APPROVE: Approval.Status.APPROVED,
    Approval.Decision.REJECT: Approval.Status.REJECTED,
    Approval.Decision.EDIT: Approval.Status.EDITED,
}


def approval_decide(
    *, user, approval_id, decision, args=None, comment="", owner: str
) -> tuple[Approval, Run | None]:
    """Decide a pending approval; returns it, and its run if that can now resume.

    Exactly one of two simultaneous decisions wins: the update is conditional on the
    approval still being pending, and the run's row is locked so that the last decision
    of a run, and only it, queues the run again.
    """
    approval = approval_for_user(user=user, approval_id=approval_id)
    if decision not in approval.allowed or decision not in DECIDED_STATUS:
        raise Invalid(f"'decision' is one of {', '.join(approval.allowed)}")
    if not isinstance(comment, str) or len(comment) > COMMENT_MAX_CHARS:
        raise Invalid(f"'comment' is a string of at most {COMMENT_MAX_CHARS} characters")
    edited_args = None
    if decision == Approval.Decision.EDIT:
        if not isinstance(args, dict):
            raise Invalid("'args' must be an object with the edited arguments")
        try:
            edited_args = TOOLS[approval.tool].validate(args).model_dump(mode="json", by_alias=True)
        except ValidationError as error:
            raise Invalid(f"invalid arguments for {approval.tool}: {_errors(error)}") from None
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=approval.run_id).first()
        if run is None:  # deleted, with its conversation, since it was read
            raise selectors.NotFound
        won = Approval.objects.filter(pk=approval.pk, status=Approval.Status.PENDING).update(
            status=DECIDED_STATUS[decision],
            edited_args=edited_args,
            comment=comment,
            decided_by=user,
            decided_at=timezone.now(),
        )
        if not won:
            raise Conflict("this approval has already been decided")
        resumable = run_resume(run=run, owner=owner)
    approval = approval_for_user(user=user, approval_id=approval_id)
    return approval, Run.objects.get(pk=run.pk) if resumable else None


aapproval_decide = to_async(approval_decide)


def _errors(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in error.errors())


def summary_store(
    *, conversation_id, run_id, through_message_id, through_turn_at, content: str, turns: int, model: str,
    input_tokens: int | None, output_tokens: int | None,
) -> Summary:
    """A new summary of the line's turns up to `through_message_id`'s (earlier summaries
    stay: other lines may still use them)."""
    return Summary.objects.create(
        conversation_id=conversation_id, run_id=run_id, through_message_id=through_message_id,
        through_turn_at=through_turn_at, content=content, turns=turns, model=model,
        input_tokens=input_tokens, output_tokens=output_tokens,
    )


asummary_store = to_async(summary_store)

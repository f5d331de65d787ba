"""Writes. Each returns what changed; callers publish events after it is committed."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydantic import ValidationError

from . import selectors, sql
from .orm import to_async
from .models import MESSAGE_ORDER, USAGE_FIELDS, Approval, Branch, Conversation, Message, Run, Summary
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


class RunGone(Exception):
    """The run is no longer there: it was deleted, with its conversation, while it executed."""


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
    its sockets are closed, wherever they are (agent.signals).

    Locked first, as a send locks it: a turn stored meanwhile is deleted with the rest
    instead of failing the delete, and a run's write that names the conversation waits
    for the delete, then finds it gone (RunGone)."""
    with transaction.atomic():
        list(Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list("pk"))
        Conversation.objects.filter(pk=conversation.pk).delete()


aconversation_delete = to_async(conversation_delete)


def lease_until():
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS)


def message_send(
    *, conversation: Conversation, content: str, client_id: str | None, owner: str, reject_if_busy: bool = False
) -> tuple[Message, Run, bool]:
    """Store the user's message on the line the conversation shows, and its run, in one
    transaction: running at once if no other run of the conversation is active, else
    queued behind them.

    The same client_id again returns the first message and run, and creates nothing.
    With reject_if_busy, a conversation with an active run refuses the message (Conflict).
    """
    def store(locked: Conversation) -> tuple[Message, Run]:
        if reject_if_busy and locked.busy:
            raise Conflict("a reply is in progress: wait for it, or stop it first")
        if locked.queued_runs >= settings.RUN_QUEUE_MAX:
            raise Conflict(f"{settings.RUN_QUEUE_MAX} messages already wait for a reply here: wait for them, or stop them")
        message, run = _store_turn(
            locked, content=content, client_id=client_id, owner=owner, branch_id=locked.current_branch_id,
            start=not locked.busy,
        )
        run.follows_a_finished_graph = (
            run.started_on_creation and locked.current_branch_id is None
            and locked.latest_run_status == Run.Status.SUCCEEDED
        )
        return message, run

    return _once_per_client_id(conversation, client_id, store)


def _locked_read(conversation: Conversation) -> Conversation:
    """The conversation locked (so that sends, forks and switches of one conversation go one
    at a time), with its runs' state; NotFound if it was deleted meanwhile."""
    try:
        return sql.conversation_locked(conversation.pk)
    except Conversation.DoesNotExist:
        raise selectors.NotFound from None


def _once_per_client_id(conversation: Conversation, client_id: str | None, store) -> tuple[Message, Run, bool]:
    """Run `store` on the locked conversation; if this client_id was stored before, return
    the first message and run instead, and create nothing. Not looked up first: the socket
    has just done so (selectors.aclient_id_seen, to count only new messages against the
    limit), so a repeat is rare, and the unique (conversation, client_id) refuses its run."""
    try:
        with transaction.atomic():
            locked = _locked_read(conversation)
            locked.queued_runs = locked.queued_runs or 0
            message, run = store(locked)
    except IntegrityError:
        # Stored before, or by another socket a moment ago; any other violation is raised.
        existing = client_id and Run.objects.select_related("user_message").filter(
            conversation=conversation, client_id=client_id
        ).first()
        if not existing:
            raise
        return existing.user_message, existing, False
    return message, run, True


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
    message.run = run = _queue_run(
        conversation, run_id=run_id, user_message=message, client_id=client_id, owner=owner, branch_id=branch_id,
        start=start,
    )
    sql.conversation_turn_stored(conversation.pk, now=timezone.now(), title=" ".join(content.split())[:AUTO_TITLE_CHARS])
    return message, run


def _queue_run(
    conversation: Conversation, *, user_message: Message, client_id: str | None, owner: str, branch_id, run_id=None,
    start: bool = False,
) -> Run:
    """A queued run; with `start` (no other run of the conversation is active, which its
    caller checked under the conversation's lock) one already running, its first attempt
    begun: its process executes it without a second write to start it."""
    started = {"status": Run.Status.RUNNING, "attempts": 1, "started_at": timezone.now()} if start else {}
    run = Run.objects.create(
        id=run_id or uuid.uuid4(),
        conversation=conversation,
        user_message=user_message,
        client_id=client_id or None,
        owner=owner,
        lease_expires_at=lease_until(),
        branch_id=branch_id,
        **started,
    )
    run.started_on_creation = run.first_start = start
    return run


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
) -> tuple[Message, Run, bool]:
    """Edit an earlier user message: a new branch with the edited message, and a run."""

    def store(locked: Conversation) -> tuple[Message, Run]:
        lines, edited = _fork(locked, message_id)
        if edited.role != Message.Role.USER:
            raise Invalid("only your own messages can be edited; regenerate a reply instead")
        branch = _branch_at(locked, lines, edited)
        return _store_turn(locked, content=content, client_id=client_id, owner=owner, branch_id=branch.id)

    return _once_per_client_id(conversation, client_id, store)


amessage_edit = to_async(message_edit)


def reply_regenerate(*, conversation: Conversation, message_id, client_id: str | None, owner: str) -> tuple[Message, Run, bool]:
    """Write a reply again: a new branch that keeps the user's message and replaces the
    turn's reply (from its first message: tool calls too), and a run for it."""

    def store(locked: Conversation) -> tuple[Message, Run]:
        lines, reply = _fork(locked, message_id)
        if reply.role != Message.Role.ASSISTANT or reply.run is None or reply.run.user_message is None:
            raise Invalid("only an assistant's reply can be regenerated")
        user_message = reply.run.user_message
        first_reply = Message.objects.filter(run=reply.run).exclude(role=Message.Role.USER).order_by(*MESSAGE_ORDER).first()
        branch = _branch_at(locked, lines, first_reply)
        run = _queue_run(locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch.id)
        return user_message, run

    return _once_per_client_id(conversation, client_id, store)


areply_regenerate = to_async(reply_regenerate)


def run_retry(*, conversation: Conversation, run_id, client_id: str | None, owner: str) -> tuple[Message, Run, bool]:
    """Answer the last turn of the shown line again after its run failed or was stopped:
    a new run for its message; one that had written something is kept as a version
    (a new branch from its first reply, as regenerate makes)."""

    def store(locked: Conversation) -> tuple[Message, Run]:
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
        return user_message, _queue_run(
            locked, user_message=user_message, client_id=client_id, owner=owner, branch_id=branch_id, start=True
        )

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


def run_start(*, run_id, owner: str, known: Run | None = None) -> Run | None:
    """Mark a run this process holds as running (one more attempt); the run comes with
    its user message and conversation.

    None if it lost the run, or if an earlier run of the conversation is still active
    (running, or waiting for approvals): runs of a conversation go one at a time, in
    order, and this one stays queued until its turn. One conditional UPDATE decides both.
    `run.first_start` tells whether it never started before: it has no checkpoint yet.

    `known`, the run as this process queued it (with its message and conversation): if
    the row still has the attempts and start time it had, the UPDATE says so and the
    started run is known without reading it back.
    """
    now, lease = timezone.now(), lease_until()
    earlier_active = Run.objects.filter(
        conversation_id=OuterRef("conversation_id"), status__in=Run.ACTIVE, created_at__lt=OuterRef("created_at")
    )
    startable = Run.objects.filter(pk=run_id, owner=owner, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).filter(
        ~Exists(earlier_active)
    )
    start = {
        "status": Run.Status.RUNNING,
        "started_at": Coalesce(F("started_at"), Value(now)),
        "attempts": F("attempts") + 1,
        "lease_expires_at": lease,
    }
    if _with_message(known) and startable.filter(attempts=known.attempts, started_at=known.started_at).update(**start):
        known.status, known.attempts, known.lease_expires_at = Run.Status.RUNNING, known.attempts + 1, lease
        known.started_at = known.started_at or now
        run = known
    elif startable.update(**start):
        run = Run.objects.select_related("user_message__conversation").get(pk=run_id)
    else:
        return None
    run.first_start = run.started_at == now
    return run


def _with_message(run: Run | None) -> bool:
    """Whether the run's user message and its conversation are loaded."""
    return (
        run is not None
        and Run.user_message.is_cached(run)
        and run.user_message is not None
        and Message.conversation.is_cached(run.user_message)
    )


arun_start = to_async(run_start)


def held_runs(*, owner: str) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(id, conversation id) of the queued and running runs this process holds, oldest first."""
    held = Run.objects.filter(owner=owner, status__in=[Run.Status.QUEUED, Run.Status.RUNNING])
    return list(held.order_by("created_at").values_list("id", "conversation_id"))


aheld_runs = to_async(held_runs)


async def arun_renew_leases(*, owner: str) -> int:
    """Extend the leases of this process's runs that would run out before the round after
    next: a run's row is then written every few rounds, not at every one."""
    soon = timezone.now() + timedelta(seconds=2 * settings.RUN_RECOVERY_INTERVAL_SECONDS)
    return await Run.objects.filter(
        Q(lease_expires_at__lt=soon) | Q(lease_expires_at__isnull=True),
        owner=owner, status__in=[Run.Status.QUEUED, Run.Status.RUNNING],
    ).aupdate(lease_expires_at=lease_until())


async def arun_claim_expired(*, owner: str, dead_owner=lambda owner: False) -> list[Run]:
    """Take over runs whose owner stopped renewing (lease expired), or is known dead.

    One UPDATE per run, conditional on the run still having the owner and lease it was
    seen with, so that two processes can never both win a run.
    """
    now = timezone.now()
    held = Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).exclude(owner=owner)
    # order_by(): Run's default ordering would add created_at to the DISTINCT, one row a run.
    owners = held.order_by().values_list("owner", flat=True).distinct()
    dead = [other async for other in owners if dead_owner(other)]
    claimable = held.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(owner__in=dead))
    candidates = [run async for run in claimable.only("id", "owner", "lease_expires_at").order_by("created_at")]
    claimed = []
    for run in candidates:
        won = await Run.objects.filter(
            pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING], owner=run.owner,
            lease_expires_at=run.lease_expires_at,
        ).aupdate(owner=owner, lease_expires_at=lease_until())
        if won:
            claimed.append(await Run.objects.aget(pk=run.pk))
    return claimed


async def arun_release_leases(*, owner: str) -> int:
    """At shutdown: let another process (or the next start) resume these runs at once."""
    return await Run.objects.filter(owner=owner, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).aupdate(
        owner="", lease_expires_at=timezone.now()
    )




# Why a run's pending approvals were rejected when it ended.
STOPPED = "The run was stopped."
SETTLED_BECAUSE = {Run.Status.CANCELLED: STOPPED, Run.Status.FAILED: "The run failed."}


def run_finish(
    *, run_id, status: str, error: str | None = None, checkpoint_id: str = "", model: str = "",
    usage: dict | None = None, run: Run | None = None,
) -> Run:
    """End an active run, with the model that answered and the tokens its steps and
    summaries used (`usage`). `run`, if given, is the run as it started: updated in
    place rather than read again. RunGone if it was deleted.

    A run stopped or failed rejects its pending approvals in the same transaction
    (`run.settled_approvals`), so that none is decided after it ended. A run that
    succeeded finished its graph, so none is pending: its end stays one UPDATE."""
    ended = {"status": status, "error": error, "checkpoint_id": checkpoint_id, "model": model,
             **{name: (usage or {}).get(name) for name in USAGE_FIELDS}}
    if status == Run.Status.SUCCEEDED:
        return _run_ended(run_id, ended, run)
    with transaction.atomic():
        run = _run_ended(run_id, ended, run)
        run.settled_approvals = _settle_approvals(run_id=run_id, reason=SETTLED_BECAUSE[status])
    return run


def _run_ended(run_id, ended: dict, run: Run | None) -> Run:
    now = timezone.now()
    ended = {**ended, "finished_at": now, "owner": "", "lease_expires_at": None}
    if sql.run_ended(run_id, **ended) and run is not None:
        for name, value in ended.items():
            setattr(run, name, value)
    else:  # ended meanwhile (or not at hand): as stored
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            raise RunGone(run_id)
    sql.conversation_touched(run.conversation_id, now=now)
    return run


def _settle_approvals(*, run_id, reason: str, user=None) -> list[Approval]:
    """Reject the run's pending approvals as it ends, on `user`'s behalf if given; the
    approvals settled. In the transaction that ends the run: approval_decide locks the
    run's row first, so a decision comes before it (and is kept) or after (Conflict)."""
    pending = list(Approval.objects.filter(run_id=run_id, status=Approval.Status.PENDING).values_list("pk", flat=True))
    if not pending:
        return []
    Approval.objects.filter(pk__in=pending).update(
        status=Approval.Status.REJECTED, comment=reason, decided_by=user, decided_at=timezone.now()
    )
    return list(Approval.objects.select_related("conversation", "decided_by").filter(pk__in=pending))



def message_store(
    *,
    message_id: uuid.UUID,
    conversation_id,
    run_id,
    branch_id,
    turn_at,
    role: str,
    content: str,
    tool_calls: list | None = None,
    tool_call_id: str = "",
    tool_name: str = "",
    stopped: bool = False,
    incomplete: str = "",
    reasoning: str = "",
    usage: dict | None = None,
) -> Message:
    """Insert or update one message of a run (idempotent: keyed by its stable id).
    `turn_at` is the turn's: its user message's.

    Insert first: the message is almost always new, and one INSERT is then all it costs.
    Called outside transactions (by the executor), where a failed INSERT spoils nothing.
    """
    fields = {
        "conversation_id": conversation_id,
        "run_id": run_id,
        "branch_id": branch_id,
        "turn_at": turn_at,
        "role": role,
        "content": content,
        "html": html_to_store(content),
        "tool_calls": tool_calls or [],
        "tool_call_id": tool_call_id,
        "tool_name": tool_name,
        "stopped": stopped,
        "incomplete": incomplete,
        "reasoning": reasoning,
        **{name: (usage or {}).get(name) for name in USAGE_FIELDS},
    }
    try:
        return Message.objects.create(pk=message_id, **fields)
    except IntegrityError:
        # Stored before: a resumed run writes it again, or Stop kept its partial text.
        # Not stored, and refused: its run (or conversation) was deleted.
        if not Message.objects.filter(pk=message_id).update(**fields):
            raise RunGone(run_id) from None
        return Message.objects.get(pk=message_id)


amessage_store = to_async(message_store)


def run_wait(*, run_id) -> Run | None:
    """Pause the run for its pending approvals; it then holds no owner or lease.

    None if no approval is pending any more (decided while the graph was stopping):
    the caller resumes at once. The run's row lock orders this against approval_decide.
    RunGone if it was deleted.
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise RunGone(run_id)
        if not run.approvals.filter(status=Approval.Status.PENDING).exists():
            return None
        Run.objects.filter(pk=run_id).update(status=Run.Status.WAITING, owner="", lease_expires_at=None)
    return Run.objects.get(pk=run_id)


arun_wait = to_async(run_wait)


def run_cancel_queued(*, run_id) -> Run | None:
    """Cancel a run that has not started (settling any approval still pending, as every
    end but success does: `run.settled_approvals`); None if it has started."""
    with transaction.atomic():
        cancelled = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.CANCELLED, finished_at=timezone.now(), owner="", lease_expires_at=None
        )
        if not cancelled:
            return None
        run = Run.objects.get(pk=run_id)
        run.settled_approvals = _settle_approvals(run_id=run_id, reason=STOPPED)
    return run


arun_cancel_queued = to_async(run_cancel_queued)


def run_cancel_waiting(*, run_id, user) -> tuple[Run, list[Approval]] | None:
    """Stop a run that waits for approvals: its pending approvals are rejected on the
    user's behalf, so their tools never run. None if the run is no longer waiting (or
    was deleted)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != Run.Status.WAITING:
            return None
        approvals = _settle_approvals(run_id=run_id, reason=STOPPED, user=user)
        Run.objects.filter(pk=run_id).update(status=Run.Status.CANCELLED, finished_at=timezone.now())
    return Run.objects.get(pk=run_id), approvals


arun_cancel_waiting = to_async(run_cancel_waiting)


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
    from agent.tools import TOOLS

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
        resumable = run.status == Run.Status.WAITING and not run.approvals.filter(status=Approval.Status.PENDING).exists()
        if resumable:
            Run.objects.filter(pk=run.pk).update(
                status=Run.Status.QUEUED, owner=owner, lease_expires_at=lease_until(), attempts=0
            )
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

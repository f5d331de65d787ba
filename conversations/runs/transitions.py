"""A run's lifecycle. Each transition is one function that commits and returns what
changed; its `a…` twin, for async code, commits on an ORM thread and then publishes the
run's event to its conversation's sockets, so every event reports a committed change.

    queue ─► start ─► wait ─► resume ─► start … ─► finish
      └───────────────┴─► cancel

queue and resume happen inside the transaction of what causes them (a turn stored,
the last approval decided: conversations.services.approvals). While a run is queued or running
the process that executes it holds a lease on it: renew, claim (another process's run
whose lease ran out), release (at shutdown).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agent.context import RunGone

from .. import events, sql
from ..checkpoints import checkpoints_trim
from ..models import USAGE_FIELDS, Approval, Conversation, Message, Run
from ..orm import to_async
from ..presenters import line_message_data, message_data, run_data, run_ended_frames
from ..rendering import html_to_store
from ..selectors.messages import amessage_with_versions

# Why a run's pending approvals were rejected when it ended.
STOPPED = "The run was stopped."
SETTLED_BECAUSE = {Run.Status.CANCELLED: STOPPED, Run.Status.FAILED: "The run failed."}


@dataclass(frozen=True)
class StartedRun:
    """A run in a new attempt, with its user message and conversation."""

    run: Run
    # It never started before: it has no checkpoint of its own to resume from.
    first_start: bool
    # It started with its send, in a conversation that never forked and whose latest run
    # succeeded: the graph's thread ended there with no step left to run.
    follows_a_finished_graph: bool = False


@dataclass(frozen=True)
class EndedRun:
    run: Run
    # The approvals still pending that its end rejected (none when it succeeded).
    settled_approvals: list[Approval] = field(default_factory=list)
    # Its last reply, stored with its end.
    reply: Message | None = None


def lease_until():
    return timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS)


# ----------------------------------------------------------------------------- queue


def run_queue(
    conversation: Conversation, *, user_message: Message, client_id: str | None, owner: str, branch_id, run_id=None,
) -> Run:
    """A queued run, in the transaction that stores its turn."""
    return _run_create(conversation, user_message, client_id=client_id, owner=owner, branch_id=branch_id, run_id=run_id)


def run_queue_started(
    conversation: Conversation, *, user_message: Message, client_id: str | None, owner: str, branch_id, run_id=None,
    follows_a_finished_graph: bool = False,
) -> StartedRun:
    """A run queued and started at once, its first attempt begun, in the transaction that
    stores its turn: no other run of the conversation is active, which its caller checked
    under the conversation's lock. Its process executes it without a second write."""
    run = _run_create(
        conversation, user_message, client_id=client_id, owner=owner, branch_id=branch_id, run_id=run_id,
        status=Run.Status.RUNNING, attempts=1, started_at=timezone.now(),
    )
    return StartedRun(run, first_start=True, follows_a_finished_graph=follows_a_finished_graph)


def _run_create(conversation: Conversation, user_message: Message, *, client_id, owner, branch_id, run_id, **started) -> Run:
    return Run.objects.create(
        id=run_id or uuid.uuid4(),
        conversation=conversation,
        user_message=user_message,
        client_id=client_id or None,
        owner=owner,
        lease_expires_at=lease_until(),
        branch_id=branch_id,
        **started,
    )


# ----------------------------------------------------------------------------- start


def run_start(*, run_id, owner: str, known: Run | None = None) -> StartedRun | None:
    """Mark a run this process holds as running (one more attempt); the run comes with
    its user message and conversation.

    None if it lost the run, or if an earlier run of the conversation is still active
    (running, or waiting for approvals): runs of a conversation go one at a time, in
    order, and this one stays queued until its turn. One conditional UPDATE decides both.

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
    return StartedRun(run, first_start=run.started_at == now)


def _with_message(run: Run | None) -> bool:
    """Whether the run's user message and its conversation are loaded."""
    return (
        run is not None
        and Run.user_message.is_cached(run)
        and run.user_message is not None
        and Message.conversation.is_cached(run.user_message)
    )


_run_start_async = to_async(run_start)


async def arun_start(*, run_id, owner: str, known: Run | None = None) -> StartedRun | None:
    started = await _run_start_async(run_id=run_id, owner=owner, known=known)
    if started is not None:
        await events.publish(started.run.conversation_id, {"type": "run", "run": run_data(started.run)})
    return started


# ------------------------------------------------------------------ wait and resume


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


_run_wait_async = to_async(run_wait)


async def arun_wait(*, run_id) -> Run | None:
    waiting = await _run_wait_async(run_id=run_id)
    if waiting is not None:
        await events.publish(waiting.conversation_id, {"type": "run", "run": run_data(waiting)})
    return waiting


def run_resume(*, run: Run, owner: str) -> bool:
    """Queue again a run that waits for approvals once none is pending, for `owner` to
    execute: from its checkpoint, with its attempts counted afresh. In the transaction
    that decided its last approval, with the run's row locked (approval_decide).
    Whether it was resumed."""
    if run.status != Run.Status.WAITING or run.approvals.filter(status=Approval.Status.PENDING).exists():
        return False
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED, owner=owner, lease_expires_at=lease_until(), attempts=0)
    return True


# ---------------------------------------------------------------------------- finish


def run_finish(
    *, run_id, status: str, error: str | None = None, checkpoint_id: str = "", model: str = "",
    usage: dict | None = None, run: Run | None = None, reply: dict | None = None, trim: bool = False,
) -> EndedRun:
    """End an active run, with the model that answered and the tokens its steps and
    summaries used (`usage`), storing its last reply first (`reply`: message_store's
    fields), if given. `run`, if given, is the run as it started: updated in place
    rather than read again. Then, with `trim`, trim its conversation's checkpoints to
    CHECKPOINTS_KEPT (before the end is reported: whoever sees the run ended sees its
    checkpoints as they stay). One call, on one ORM thread, for all of it. RunGone if
    the run was deleted.

    A run stopped or failed rejects its pending approvals in the same transaction, so
    that none is decided after it ended. A run that succeeded finished its graph, so
    none is pending: its end stays one UPDATE."""
    stored = message_store(**reply) if reply is not None else None
    ended = {"status": status, "error": error, "checkpoint_id": checkpoint_id, "model": model,
             **{name: (usage or {}).get(name) for name in USAGE_FIELDS}}
    if status == Run.Status.SUCCEEDED:
        result = EndedRun(_run_ended(run_id, ended, run), reply=stored)
    else:
        with transaction.atomic():
            run = _run_ended(run_id, ended, run)
            result = EndedRun(run, _settle_approvals(run_id=run_id, reason=SETTLED_BECAUSE[status]), stored)
    if trim and settings.CHECKPOINTS_KEPT:
        checkpoints_trim(conversation_id=result.run.conversation_id, keep=settings.CHECKPOINTS_KEPT)
    return result


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


_run_finish_async = to_async(run_finish)


async def arun_finish(**fields) -> EndedRun | None:
    """run_finish, then its frames: its last reply (if it stored one), each approval it
    settled, and the run. None if the run was deleted: nothing to tell."""
    try:
        ended = await _run_finish_async(**fields)
    except RunGone:
        return None
    frames = run_ended_frames(ended.run, ended.settled_approvals)
    if ended.reply is None:
        await events.publish(ended.run.conversation_id, *frames)
    else:
        frame = await message_frame(ended.reply)
        await events.publish_stored(
            ended.run.conversation_id, frame, *frames, run_id=str(ended.run.id), message_id=str(ended.reply.id)
        )
    return ended


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


# ---------------------------------------------------------------------------- cancel


def run_cancel(*, run_id, seen: str, user) -> EndedRun | None:
    """Cancel a run that executes nowhere: queued (it never starts) or waiting for
    approvals (they are rejected on `user`'s behalf, so their tools never run), if it is
    still as its caller saw it (`seen`, its status). A queued run settles any approval
    still pending too, as every end but success does. None if it is no longer so, or
    was deleted: a running run is stopped by the process that executes it."""
    with transaction.atomic():
        # The UPDATE locks the run's row: approval_decide, which locks it first, comes
        # before (and is kept) or after (and finds the run ended).
        cancelled = Run.objects.filter(pk=run_id, status=seen).update(
            status=Run.Status.CANCELLED, finished_at=timezone.now(), owner="", lease_expires_at=None
        )
        if not cancelled:
            return None
        settled = _settle_approvals(run_id=run_id, reason=STOPPED, user=user if seen == Run.Status.WAITING else None)
    return EndedRun(Run.objects.get(pk=run_id), settled)


_run_cancel_async = to_async(run_cancel)


async def arun_cancel(*, run_id, seen: str, user) -> EndedRun | None:
    ended = await _run_cancel_async(run_id=run_id, seen=seen, user=user)
    if ended is not None:
        await events.publish(ended.run.conversation_id, *run_ended_frames(ended.run, ended.settled_approvals))
    return ended


# ------------------------------------------------------------- renew, claim, release


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


# ------------------------------------------------------------ what a run writes


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


async def message_frame(stored: Message) -> dict:
    """The `message` frame of a message a run stored; one on a branch carries its versions."""
    message = line_message_data(await amessage_with_versions(stored)) if stored.branch_id else message_data(stored)
    return {"type": "message", "message": message}

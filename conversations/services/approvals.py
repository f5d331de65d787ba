"""Approvals: an interrupt of the graph recorded, and a person's decision on it."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from agent.context import RunGone
from agent.tools import TOOLS

from .. import events
from ..errors import Conflict, Invalid, NotFound
from ..models import Approval, Run
from ..orm import to_async
from ..presenters import approval_data, run_data
from ..runs.transitions import run_resume
from ..selectors.approvals import approval_for_user

COMMENT_MAX_CHARS = 2000
DECIDED_STATUS = {
    Approval.Decision.APPROVE: Approval.Status.APPROVED,
    Approval.Decision.REJECT: Approval.Status.REJECTED,
    Approval.Decision.EDIT: Approval.Status.EDITED,
}


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
            raise NotFound
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


_aapproval_decide = to_async(approval_decide)


async def aapproval_decide(**fields) -> tuple[Approval, Run | None]:
    """`approval_decide`, then the decision, and the run it queues again, to every socket
    of the conversation."""
    approval, run = await _aapproval_decide(**fields)
    await events.publish(approval.conversation_id, {"type": "approval", "approval": approval_data(approval)})
    if run is not None:
        await events.publish(run.conversation_id, {"type": "run", "run": run_data(run)})
    return approval, run


def _errors(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in error.errors())

"""Approvals: the one lookup by id that checks the owner, the inbox, and the decisions a
run resumes with."""

from __future__ import annotations

from ..errors import NotFound
from ..models import Approval
from ..orm import to_async

APPROVAL_FILTERS = {"all", *Approval.Status.values}


def approvals_with_names():
    """Approvals with what their JSON names (their conversation's title, who decided)."""
    return Approval.objects.select_related("conversation", "decided_by").order_by("created_at")


def approval_for_user(*, user, approval_id) -> Approval:
    """The approval if it exists and its conversation is the user's; NotFound otherwise."""
    if not getattr(user, "is_authenticated", False) or not isinstance(approval_id, str):
        raise NotFound
    try:
        return approvals_with_names().get(pk=approval_id, conversation__user=user)
    except Approval.DoesNotExist:
        raise NotFound from None


def approval_list(*, user, status: str = "pending") -> list[Approval]:
    """The user's approvals with this status (or all), newest first; ValueError for a
    status that is none of APPROVAL_FILTERS."""
    if status not in APPROVAL_FILTERS:
        raise ValueError(f"'status' is one of {', '.join(sorted(APPROVAL_FILTERS))}")
    queryset = approvals_with_names().filter(conversation__user=user)
    if status != "all":
        queryset = queryset.filter(status=status)
    return list(queryset.order_by("-created_at"))


def approval_resume_values(*, run_id, interrupt_ids: list[str]) -> dict | None:
    """The decisions to resume the run with, by interrupt id; None while any is pending."""
    approvals = list(Approval.objects.filter(run_id=run_id, pk__in=interrupt_ids))
    if len(approvals) < len(interrupt_ids) or any(a.status == Approval.Status.PENDING for a in approvals):
        return None
    decision = {
        Approval.Status.APPROVED: "approve",
        Approval.Status.REJECTED: "reject",
        Approval.Status.EDITED: "edit",
    }
    return {
        a.id: {"decision": decision[a.status], "args": a.edited_args, "comment": a.comment} for a in approvals
    }


aapproval_resume_values = to_async(approval_resume_values)

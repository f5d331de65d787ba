"""At most once: every tool call runs through a ledger row keyed by the call's id."""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections
from django.utils import timezone
from pydantic import ValidationError

from conversations.services import RunGone

from .context import ChatContext
from .models import ToolExecution
from .tools import Tool, ToolError

logger = logging.getLogger(__name__)

UNKNOWN_OUTCOME = (
    "Outcome unknown: the server stopped while {tool} was running, so it is not known whether it "
    "took effect. It was not run again."
)


def run_tool_once(*, tool: Tool, args: dict, tool_call_id: str, run_id: str, context: ChatContext) -> tuple[str, str]:
    """(status, result) of the call: run now, or the recorded outcome if it ran before."""
    try:
        execution, created = _ledger_row(tool=tool, args=args, tool_call_id=tool_call_id, run_id=run_id, context=context)
        if not created:
            return _recorded_outcome(execution)
        status, result = _run(tool, args, context)
        ToolExecution.objects.filter(pk=execution.pk).update(status=status, result=result, finished_at=timezone.now())
        return status, result
    finally:
        # Tools run on worker threads; do not leave a connection behind on each.
        connections.close_all()


arun_tool_once = sync_to_async(run_tool_once, thread_sensitive=False)


def _ledger_row(*, tool: Tool, args: dict, tool_call_id: str, run_id: str, context: ChatContext):
    """The call's row, and whether it was written now. RunGone if its conversation was
    deleted (the row is not there, and its insert is refused)."""
    try:
        return ToolExecution.objects.get_or_create(
            conversation_id=context.conversation_id,
            tool_call_id=tool_call_id,
            defaults={"tool": tool.name, "args": args, "run_id": run_id},
        )
    except IntegrityError:
        raise RunGone(run_id) from None


def _recorded_outcome(execution: ToolExecution) -> tuple[str, str]:
    if execution.status != ToolExecution.Status.STARTED:
        return execution.status, execution.result
    # The row was written, the tool started, and the process died before recording it.
    result = UNKNOWN_OUTCOME.format(tool=execution.tool)
    ToolExecution.objects.filter(pk=execution.pk, status=ToolExecution.Status.STARTED).update(
        status=ToolExecution.Status.UNKNOWN, result=result, finished_at=timezone.now()
    )
    return ToolExecution.Status.UNKNOWN, result


def _run(tool: Tool, args: dict, context: ChatContext) -> tuple[str, str]:
    try:
        return ToolExecution.Status.SUCCEEDED, tool.action(tool.validate(args), context)
    except (ToolError, ValidationError) as error:
        return ToolExecution.Status.FAILED, str(error)
    except Exception as error:
        logger.exception("tool %s failed", tool.name)
        return ToolExecution.Status.FAILED, f"{tool.name} failed: {type(error).__name__}: {error}"

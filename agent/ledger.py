"""At most once: every tool call runs through a ledger row keyed by the call's id."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, connections
from django.utils import timezone
from pydantic import ValidationError

from chatproject.logs import log_failure

from .context import ChatContext, RunGone
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


_run_tool_once_on_a_thread = sync_to_async(run_tool_once, thread_sensitive=False)

STOPPED_WHILE_RUNNING = (
    "Outcome unknown: the user stopped the run while {tool} was running, and it had not finished "
    "{seconds:g} seconds later. It was not run again."
)


@dataclass(frozen=True)
class ToolOutcome:
    tool_call_id: str
    tool: str
    status: str
    result: str


# Tool calls running on this process, by run: a Stop lets them finish (a thread cannot be
# interrupted anyway) and reports what they did. Futures of the event loop that runs them.
_in_flight: defaultdict[str, dict[str, tuple[str, asyncio.Future]]] = defaultdict(dict)


async def arun_tool_once(*, tool: Tool, args: dict, tool_call_id: str, run_id: str, context: ChatContext) -> tuple[str, str]:
    """run_tool_once on a worker thread. If the run is stopped meanwhile the call goes
    on, and `settle_stopped` reports its outcome."""
    running = asyncio.ensure_future(
        _run_tool_once_on_a_thread(tool=tool, args=args, tool_call_id=tool_call_id, run_id=run_id, context=context)
    )
    _in_flight[run_id][tool_call_id] = (tool.name, running)
    try:
        return await asyncio.shield(running)  # a Stop cancels this wait, not the call
    finally:
        if running.done():
            _forget(run_id, tool_call_id)


def _forget(run_id: str, tool_call_id: str) -> None:
    calls = _in_flight.get(run_id, {})
    calls.pop(tool_call_id, None)
    if not calls:
        _in_flight.pop(run_id, None)


async def settle_stopped(run_id: str) -> list[ToolOutcome]:
    """The outcome of each tool call of the run that was running when it was stopped:
    what it returned, if it finishes within TOOL_STOP_GRACE_SECONDS, else unknown."""
    calls = _in_flight.pop(str(run_id), {})
    if not calls:
        return []
    grace = settings.TOOL_STOP_GRACE_SECONDS
    await asyncio.wait([running for _, running in calls.values()], timeout=grace)
    outcomes = []
    for tool_call_id, (name, running) in calls.items():
        if running.done() and not running.exception():
            status, result = running.result()
        else:
            status = ToolExecution.Status.UNKNOWN
            result = STOPPED_WHILE_RUNNING.format(tool=name, seconds=grace)
        outcomes.append(ToolOutcome(tool_call_id, name, status, result))
    return outcomes


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
        log_failure(logger, "tool %s failed", tool.name, error=error)
        return ToolExecution.Status.FAILED, f"{tool.name} failed: {type(error).__name__}: {error}"

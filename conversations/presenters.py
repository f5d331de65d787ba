"""Model objects → the JSON objects of docs/protocol.md."""

from agent.models import Task
from agent.tools import TOOLS

from .models import USAGE_FIELDS, Approval, Branch, Conversation, Message, Run, Summary
from .rendering import message_html
from .selectors.branches import Versions
from .selectors.messages import LineMessage
from .selectors.snapshots import StreamingReply


def _time(value):
    return value.isoformat() if value else None


def _id(value) -> str | None:
    return str(value) if value else None


def conversation_data(conversation: Conversation) -> dict:
    # run_status and pending_approvals are annotations (selectors.conversations); a new
    # conversation has neither.
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "created_at": _time(conversation.created_at),
        "updated_at": _time(conversation.updated_at),
        "pending_approvals": getattr(conversation, "pending_approvals", 0),
        "run_status": getattr(conversation, "run_status", None),
        "model": conversation.chat_model,
    }


def message_data(message: Message) -> dict:
    data = {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "html": message_html(message.content, message.html),
        "created_at": _time(message.created_at),
        "turn_at": _time(message.turn_at),
        "run_id": _id(message.run_id),
        "branch_id": _id(message.branch_id),
        "stopped": message.stopped,
        "incomplete": message.incomplete or None,
    }
    if message.reasoning:
        data["reasoning"] = message.reasoning
    if message.input_tokens is not None:
        data["usage"] = {name: getattr(message, name) for name in USAGE_FIELDS}
    if message.tool_calls:
        data["tool_calls"] = message.tool_calls
    if message.role == Message.Role.TOOL:
        data["tool_call_id"] = message.tool_call_id
        data["tool_name"] = message.tool_name
    return data


def streaming_reply_data(reply: StreamingReply) -> dict:
    """An assistant reply still being written: its text so far, `streaming` true."""
    data = {
        "id": reply.id,
        "role": Message.Role.ASSISTANT,
        "content": reply.content,
        "html": None,
        "created_at": None,
        "turn_at": _time(reply.turn_at),
        "run_id": reply.run_id,
        "stopped": False,
        "incomplete": None,
        "streaming": True,
    }
    if reply.reasoning is not None:
        data["reasoning"] = reply.reasoning
    return data


def line_message_data(shown: LineMessage) -> dict:
    """A message of a line, with its versions when it was edited or regenerated."""
    data = message_data(shown.message)
    if shown.versions:
        data["versions"] = versions_data(shown.versions)
    return data


def versions_data(versions: Versions) -> dict:
    choices = [
        {"message_id": _id(choice.message_id), "branch_id": _id(choice.branch_id)} for choice in versions.choices
    ]
    return {"index": versions.index, "count": len(choices), "choices": choices}


def run_data(run: Run) -> dict:
    return {
        "id": str(run.id),
        "conversation_id": str(run.conversation_id),
        "status": run.status,
        "error": run.error,
        "created_at": _time(run.created_at),
        "user_message_id": _id(run.user_message_id),
        "branch_id": _id(run.branch_id),
        "model": run.model or None,
        "usage": {name: getattr(run, name) for name in USAGE_FIELDS} if run.input_tokens is not None else None,
    }


def branch_data(branch: Branch) -> dict:
    return {
        "id": str(branch.id),
        "parent_id": _id(branch.parent_id),
        "forked_at": _id(branch.forked_at_id),
        "created_at": _time(branch.created_at),
    }


def approval_data(approval: Approval) -> dict:
    tool = TOOLS.get(approval.tool)
    return {
        "id": approval.id,
        "run_id": str(approval.run_id),
        "conversation_id": str(approval.conversation_id),
        "conversation_title": approval.conversation.title,
        "tool_call_id": approval.tool_call_id,
        "tool": approval.tool,
        "args": approval.args,
        "edited_args": approval.edited_args,
        "description": approval.description,
        "status": approval.status,
        "allowed": approval.allowed,
        "comment": approval.comment,
        "decided_by": approval.decided_by.get_username() if approval.decided_by else None,
        "decided_at": _time(approval.decided_at),
        "created_at": _time(approval.created_at),
        "args_schema": tool.json_schema() if tool else None,
    }


def task_data(task: Task) -> dict:
    return {
        "id": str(task.id),
        "title": task.title,
        "due": task.due.isoformat() if task.due else None,
        "conversation_id": _id(task.conversation_id),
        "created_at": task.created_at.isoformat(),
    }


def summary_data(summary: Summary) -> dict:
    return {
        "id": str(summary.id),
        "through_message_id": str(summary.through_message_id),
        "turns": summary.turns,
        "content": summary.content,
        "model": summary.model,
        "input_tokens": summary.input_tokens,
        "output_tokens": summary.output_tokens,
        "created_at": _time(summary.created_at),
    }


def run_ended_frames(run: Run, settled_approvals: list[Approval]) -> list[dict]:
    """The frames of a run's end: each approval it settled, then the run."""
    approvals = ({"type": "approval", "approval": approval_data(a)} for a in settled_approvals)
    return [*approvals, {"type": "run", "run": run_data(run)}]

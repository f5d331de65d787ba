"""A conversation as a download: Markdown for people, JSON for programs.

JSON holds everything: every message of every branch (each names its branch), the
branches, the runs and every approval with its decision. Markdown shows the line the
conversation shows, with its tool calls and decisions, then each other branch's own
messages.
"""

import json

from .models import Approval, Conversation, Message
from .presenters import approval_data, branch_data, conversation_data, message_data, run_data
from .selectors import conversation_lines, message_list

FORMATS = ("json", "markdown")


def export_conversation(*, conversation: Conversation, kind: str) -> tuple[str, str, str]:
    lines = conversation_lines(conversation_id=conversation.id)
    shown = message_list(conversation=conversation, lines=lines)
    approvals = [
        approval_data(a)
        for a in Approval.objects.filter(conversation=conversation).select_related("conversation", "decided_by").order_by("created_at")
    ]
    if kind == "markdown":
        return _markdown(conversation, lines, shown, approvals), "text/markdown; charset=utf-8", "md"
    data = {
        "conversation": conversation_data(conversation),
        "branch_id": str(conversation.current_branch_id) if conversation.current_branch_id else None,
        "shown_message_ids": [m["id"] for m in shown],
        "messages": [message_data(m) for m in _all_messages(conversation)],
        "branches": [branch_data(b) for b in lines.branches.values()],
        "runs": [run_data(run) for run in conversation.runs.order_by("created_at")],
        "approvals": approvals,
    }
    return json.dumps(data, indent=2), "application/json", "json"


def _all_messages(conversation: Conversation):
    return Message.objects.filter(conversation=conversation).order_by("created_at", "id")


def _markdown(conversation, lines, shown: list[dict], approvals: list[dict]) -> str:
    decisions = {a["tool_call_id"]: a for a in approvals}
    out = [f"# {conversation.title or 'Conversation'}", "", f"Exported conversation `{conversation.id}`.", ""]
    for message in shown:
        out += _message_markdown(message, decisions)
    shown_ids = {m["id"] for m in shown}
    for branch in lines.branches.values():
        own = [message_data(m) for m in branch.messages.order_by("created_at", "id") if str(m.id) not in shown_ids]
        if not own:
            continue
        replacing = f", replacing message `{branch.forked_at_id}`" if branch.forked_at_id else ""
        out += [f"## Another version (branch `{branch.id}`){replacing}", ""]
        for message in own:
            out += _message_markdown(message, decisions, level="###")
    return "\n".join(out)


def _message_markdown(message: dict, decisions: dict, level: str = "##") -> list[str]:
    out = [f"{level} {message['role']} · {message['created_at']}", ""]
    for call in message.get("tool_calls", []):
        out += [f"Tool call `{call['name']}` with `{json.dumps(call['args'])}`", ""]
        if decision := decisions.get(call["id"]):
            out += [_decision_markdown(decision), ""]
    if message["content"]:
        out += [message["content"], ""]
    return out


def _decision_markdown(approval: dict) -> str:
    if approval["status"] == "pending":
        return f"Approval: {approval['description']} — pending"
    # A run that ended unfinished settled it with no one's decision (or its user is gone).
    decided = f"{approval['status']} by {approval['decided_by']}" if approval["decided_by"] else approval["status"]
    text = f"Approval: {approval['description']} — {decided} at {approval['decided_at']}"
    if approval["edited_args"]:
        text += f", with `{json.dumps(approval['edited_args'])}`"
    if approval["comment"]:
        text += f": “{approval['comment']}”"
    return text

"""A conversation as a download: Markdown for people, JSON for programs.

JSON holds everything: every message of every branch (each names its branch), the
branches, the runs (with the model that answered and the tokens used), every approval
with its decision, and the summaries of earlier turns. Markdown shows the line the
conversation shows, with its tool calls and decisions, then each other branch's own
messages.
"""

import json

from django.db.models import Sum

from .models import MESSAGE_ORDER, USAGE_FIELDS, Conversation, Message
from .presenters import approval_data, branch_data, conversation_data, line_message_data, message_data, run_data, summary_data
from .selectors.approvals import approvals_with_names
from .selectors.branches import conversation_lines
from .selectors.messages import message_list

FORMATS = ("json", "markdown")


def export_conversation(*, conversation: Conversation, kind: str) -> tuple[str, str, str]:
    lines = conversation_lines(conversation_id=conversation.id)
    shown = [line_message_data(m) for m in message_list(conversation=conversation, lines=lines)]
    approvals = [approval_data(a) for a in approvals_with_names().filter(conversation=conversation)]
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
        "summaries": [summary_data(summary) for summary in conversation.summaries.order_by("through_turn_at", "created_at")],
        "usage": _usage(conversation),
    }
    return json.dumps(data, indent=2), "application/json", "json"


def _all_messages(conversation: Conversation):
    return Message.objects.filter(conversation=conversation).order_by(*MESSAGE_ORDER)


def _usage(conversation: Conversation) -> dict:
    """The tokens every run of the conversation used, in all (summaries included)."""
    totals = conversation.runs.aggregate(**{name: Sum(name) for name in USAGE_FIELDS})
    return {name: totals[name] or 0 for name in USAGE_FIELDS}


def _markdown(conversation, lines, shown: list[dict], approvals: list[dict]) -> str:
    decisions = {a["tool_call_id"]: a for a in approvals}
    out = [f"# {conversation.title or 'Conversation'}", "", f"Exported conversation `{conversation.id}`.", ""]
    usage = _usage(conversation)
    models = sorted({model for model in conversation.runs.values_list("model", flat=True) if model})
    if models:
        out += [f"Answered by {', '.join(f'`{m}`' for m in models)}; "
                f"{usage['input_tokens']} input, {usage['output_tokens']} output "
                f"({usage['reasoning_tokens']} reasoning) tokens.", ""]
    for message in shown:
        out += _message_markdown(message, decisions)
    shown_ids = {m["id"] for m in shown}
    for branch in lines.branches.values():
        own = [message_data(m) for m in branch.messages.order_by(*MESSAGE_ORDER) if str(m.id) not in shown_ids]
        if not own:
            continue
        replacing = f", replacing message `{branch.forked_at_id}`" if branch.forked_at_id else ""
        out += [f"## Another version (branch `{branch.id}`){replacing}", ""]
        for message in own:
            out += _message_markdown(message, decisions, level="###")
    return "\n".join(out)


INCOMPLETE_NOTES = {value: f"*(This reply was {label}.)*" for value, label in Message.Incomplete.choices}


def _message_markdown(message: dict, decisions: dict, level: str = "##") -> list[str]:
    out = [f"{level} {message['role']} · {message['created_at']}", ""]
    if message.get("reasoning"):
        thinking = "\n".join(f"> {line}" for line in message["reasoning"].splitlines())
        out += ["> **Thinking** (the model's reasoning, not part of its answer):", ">", thinking, ""]
    for call in message.get("tool_calls", []):
        out += [f"Tool call `{call['name']}` with `{json.dumps(call['args'])}`", ""]
        if decision := decisions.get(call["id"]):
            out += [_decision_markdown(decision), ""]
    if message["content"]:
        out += [message["content"], ""]
    if message.get("incomplete"):
        out += [INCOMPLETE_NOTES[message["incomplete"]], ""]
    if message.get("stopped"):
        out += ["*(Stopped by the user.)*", ""]
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

"""A conversation as a download: Markdown for people, JSON for programs."""

import json

from .models import Conversation
from .presenters import conversation_data, run_data
from .selectors import message_list

FORMATS = ("json", "markdown")


def export_conversation(*, conversation: Conversation, kind: str) -> tuple[str, str, str]:
    messages = message_list(conversation=conversation)
    if kind == "markdown":
        return _markdown(conversation, messages), "text/markdown; charset=utf-8", "md"
    data = {
        "conversation": conversation_data(conversation),
        "messages": messages,
        "runs": [run_data(run) for run in conversation.runs.order_by("created_at")],
        "approvals": [],
    }
    return json.dumps(data, indent=2), "application/json", "json"


def _markdown(conversation: Conversation, messages: list[dict]) -> str:
    lines = [f"# {conversation.title or 'Conversation'}", "", f"Exported conversation `{conversation.id}`.", ""]
    for message in messages:
        lines.append(f"## {message['role']} · {message['created_at']}")
        lines.append("")
        for call in message.get("tool_calls", []):
            lines.append(f"Tool call `{call['name']}` with `{json.dumps(call['args'])}`")
            lines.append("")
        if message["content"]:
            lines.append(message["content"])
            lines.append("")
    return "\n".join(lines)

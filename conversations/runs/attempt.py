"""One attempt of a run: the graph's stream turned into stored messages and the frames
every socket of the conversation is sent."""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, ToolMessage

from agent import ledger
from agent.model_calls import REASONING, Usage

from .. import events
from ..models import Message, graph_message_id
from ..presenters import approval_data
from ..services.approvals import aapproval_create
from . import transitions

# The key of the "updates" stream under which LangGraph reports interrupts.
INTERRUPT_KEY = "__interrupt__"


class RunEvents:
    """Turns the graph's stream into stored messages and websocket frames."""

    def __init__(self, *, conversation_id: str, run_id: str, branch_id, turn_at, model: str):
        self.conversation_id = conversation_id
        self.run_id = run_id
        self.branch_id = branch_id
        self.turn_at = turn_at
        self.model = model
        # Text streamed and not stored yet, by Message id: the answer, and the reasoning.
        self.partial: dict[str, str] = {}
        self.partial_reasoning: dict[str, str] = {}
        # Snapshots carry streamed reasoning until the run ends (they show a stored
        # reply's own): set when there is some to forget then.
        self.streamed_reasoning = False
        # Tokens used, by model step (its reply's Message id) or summary.
        self.usage: dict[str, Usage] = {}
        # Messages of the run stored (by an earlier attempt too): a resumed graph reports
        # again the tool results it had before it paused, which are not stored or sent twice.
        self.stored: set[str] = set()
        self._sending: asyncio.Future | None = None
        self._interrupted = False
        # The run's last reply (message_store's fields), stored with the run's end.
        self._reply: dict | None = None

    async def on_custom(self, payload: dict) -> None:
        if "token" in payload:
            await self.on_token(payload["message_id"], payload["token"], payload["part"])
        elif "summary_usage" in payload:
            self.usage[payload["summary_id"]] = Usage(**payload["summary_usage"])
        else:
            await events.publish(self.conversation_id, {"type": "tool", "run_id": self.run_id, **payload})

    async def on_token(self, message_id: str, delta: str, part: str) -> None:
        texts = self.partial_reasoning if part == REASONING else self.partial
        texts[message_id] = texts.get(message_id, "") + delta
        self.streamed_reasoning |= part == REASONING
        # Shielded: a Stop never cuts a token frame in half, so the kept partial reply
        # is exactly what the sockets were sent.
        self._sending = asyncio.ensure_future(
            events.publish_token(
                self.conversation_id, run_id=self.run_id, message_id=message_id, delta=delta,
                reasoning=part == REASONING,
            )
        )
        await asyncio.shield(self._sending)

    async def on_update(self, payload: dict) -> None:
        for node, update in payload.items():
            if node == INTERRUPT_KEY:
                self._interrupted = True
                await self.record_approvals(update)
                continue
            for message in update.get("messages", []) if isinstance(update, dict) else []:
                if isinstance(message, AIMessage):
                    await self._store_reply(message)
                elif isinstance(message, ToolMessage):
                    await self._store_tool_result(message)

    async def record_approvals(self, interrupts) -> None:
        """Each interrupt is a tool call waiting for the user: record it as an Approval."""
        for pending in interrupts:
            approval = await aapproval_create(
                interrupt_id=pending.id, run_id=self.run_id, conversation_id=self.conversation_id, request=pending.value
            )
            if approval is not None:
                await events.publish(self.conversation_id, {"type": "approval", "approval": approval_data(approval)})

    def take_reply(self) -> dict | None:
        """The run's last reply, not stored yet, as message_store's fields; forgotten here."""
        if self._reply is None:
            return None
        fields, self._reply = self._reply, None
        return self._of_this_run(fields)

    async def store_reply(self) -> None:
        """Store and send the run's last reply now: something comes after it."""
        if self._reply is not None:
            fields, self._reply = self._reply, None
            await self._store(**fields)

    def take_interrupted(self) -> bool:
        interrupted, self._interrupted = self._interrupted, False
        return interrupted

    def usage_total(self) -> dict | None:
        return sum(self.usage.values(), Usage()).as_fields() if self.usage else None

    async def _store_reply(self, message: AIMessage) -> None:
        tool_calls = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]
        # Calls whose arguments did not parse: kept as sent, with the parser's error.
        tool_calls += [
            {"id": c["id"], "name": c["name"], "args": c["args"], "error": c["error"] or "invalid"}
            for c in message.invalid_tool_calls
        ]
        message_id = graph_message_id(self.conversation_id, message.id)
        usage = Usage.of(message)
        if message.usage_metadata:
            self.usage[str(message_id)] = usage
        fields = {
            "message_id": message_id,
            "role": Message.Role.ASSISTANT,
            "content": message.text,
            "tool_calls": tool_calls,
            "reasoning": message.additional_kwargs.get("reasoning_content", ""),
            "incomplete": message.response_metadata.get("ending", ""),
            "usage": usage.as_fields() if message.usage_metadata else None,
        }
        if tool_calls:
            await self._store(**fields)
            return
        # A reply that calls no tool is the run's last message: stored with the run's end
        # (one ORM call) and sent with its frame (one step), so a client that answers it
        # at once finds the conversation idle, and its message starts a run straight away.
        await self.store_reply()
        self._reply = fields
        # Complete: a Stop now keeps it whole.
        self.partial.pop(str(message_id), None)
        self.partial_reasoning.pop(str(message_id), None)

    async def _store_tool_result(self, message: ToolMessage) -> None:
        await self._store_tool_message(
            tool_call_id=message.tool_call_id, name=message.name, text=message.text,
            status="failed" if message.status == "error" else "succeeded",
        )

    async def store_tool_outcome(self, outcome: ledger.ToolOutcome) -> None:
        """The outcome of a tool call that was running when the run was stopped."""
        await self._store_tool_message(
            tool_call_id=outcome.tool_call_id, name=outcome.tool, text=outcome.result, status=outcome.status,
        )

    async def _store_tool_message(self, *, tool_call_id: str, name: str | None, text: str, status: str) -> None:
        message_id = graph_message_id(self.conversation_id, f"tool:{tool_call_id}")
        if str(message_id) in self.stored:
            return
        await self._store(
            message_id=message_id,
            role=Message.Role.TOOL,
            content=text,
            tool_call_id=tool_call_id,
            tool_name=name or "",
        )
        await events.publish(
            self.conversation_id,
            {"type": "tool", "run_id": self.run_id, "tool_call_id": tool_call_id, "name": name, "status": status,
             "result": text},
        )

    async def keep_partial_reply(self, *, stopped: bool = False, incomplete: str = "") -> None:
        """Keep what the assistant had written when the run stopped (the user's Stop, or a
        failure of the model server): marked, never given back to the model as whole."""
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        for message_id in dict.fromkeys([*self.partial, *self.partial_reasoning]):
            await self._store(
                message_id=message_id, role=Message.Role.ASSISTANT, content=self.partial.get(message_id, ""),
                reasoning=self.partial_reasoning.get(message_id, ""), stopped=stopped, incomplete=incomplete,
            )

    async def _store(self, **fields) -> Message:
        await self.store_reply()  # a later message: the last reply so far goes first
        stored = await transitions.amessage_store(**self._of_this_run(fields))
        self.stored.add(str(stored.id))
        frame = await transitions.message_frame(stored)
        await events.publish_stored(self.conversation_id, frame, run_id=self.run_id, message_id=str(stored.id))
        self.partial.pop(str(stored.id), None)
        self.partial_reasoning.pop(str(stored.id), None)
        return stored

    def _of_this_run(self, fields: dict) -> dict:
        """message_store's fields for a message of this run."""
        return {
            "conversation_id": self.conversation_id, "run_id": self.run_id, "branch_id": self.branch_id,
            "turn_at": self.turn_at, **fields,
        }

"""The agent graph: a model node; a summarize node it goes to first when earlier turns no
longer fit the model's context; and one tools task per tool call (Send), which waits for
the user's decision (interrupt) before a tool that needs approval."""

from __future__ import annotations

import uuid

from django.conf import settings
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send, interrupt
from pydantic import ValidationError
from typing_extensions import TypedDict

from . import ledger
from .context import ChatContext
from .context_window import fold_into_summary, window_for
from .llm import chat_model
from .model_calls import stream_reply
from .prompts import INVALID_ARGUMENTS, UNKNOWN_TOOL
from .state import ChatState
from .tools import TOOLS

MODEL_NODE = "agent"
TOOLS_NODE = "tools"
SUMMARIZE_NODE = "summarize"
DECISIONS = ["approve", "reject", "edit"]
REJECTED_PREFIX = "Rejected by the user."


class TooManySteps(Exception):
    """The run took CHAT_MAX_STEPS model steps without a final reply; `str()` is for the user."""

    def __init__(self, steps: int):
        super().__init__(
            f"The agent stopped after {steps} model steps without finishing its reply "
            "(the limit of steps per turn was reached)."
        )


class ToolCallInput(TypedDict):
    tool_call: dict


def recursion_limit() -> int:
    """LangGraph's bound on a run's steps: CHAT_MAX_STEPS model steps, each with its tools
    step and a summary step, with room to spare. The model node enforces the real limit."""
    return 3 * settings.CHAT_MAX_STEPS + 10


def _route_tool_calls(state: ChatState):
    last = state["messages"][-1]
    if not isinstance(last, AIMessage):
        return END
    # Calls whose arguments did not parse go to the tools node too: it answers them with
    # an error the model can correct.
    calls = [*last.tool_calls, *({**call, "error": call["error"] or "invalid"} for call in last.invalid_tool_calls)]
    return [Send(TOOLS_NODE, {"tool_call": call}) for call in calls] or END


def approval_request(tool, tool_call: dict, validated) -> dict:
    """The interrupt's value: what the Approval row and the user's card show."""
    return {
        "tool_call_id": tool_call["id"],
        "tool": tool.name,
        "args": tool_call["args"],
        "description": tool.describe(validated),
        "allowed": DECISIONS,
    }


async def run_tool(call: ToolCallInput, runtime: Runtime[ChatContext]) -> dict:
    tool_call = call["tool_call"]
    tool = TOOLS.get(tool_call["name"])

    def answer(content: str, ok: bool) -> dict:
        message = ToolMessage(
            content, tool_call_id=tool_call["id"], name=tool_call["name"], status="success" if ok else "error"
        )
        return {"messages": [message]}

    if "error" in tool_call:
        return answer(INVALID_ARGUMENTS.format(name=tool_call["name"], error=tool_call["error"]), ok=False)
    if tool is None:
        return answer(UNKNOWN_TOOL.format(name=tool_call["name"], tools=", ".join(TOOLS)), ok=False)
    args = tool_call["args"]
    try:
        validated = tool.validate(args)
    except ValidationError as error:
        return answer(f"Invalid arguments for {tool.name}: {error}", ok=False)
    if tool.needs_approval:
        decision = interrupt(approval_request(tool, tool_call, validated))
        if decision["decision"] == "reject":
            comment = decision.get("comment") or ""
            return answer(f"{REJECTED_PREFIX} {comment}".strip(), ok=False)
        args = decision.get("args") or args
    get_stream_writer()({"tool_call_id": tool_call["id"], "name": tool.name, "args": args, "status": "started"})
    status, result = await ledger.arun_tool_once(
        tool=tool, args=args, tool_call_id=tool_call["id"], run_id=runtime.context.run_id, context=runtime.context
    )
    return answer(result, ok=status == "succeeded")


async def call_model(state: ChatState, runtime: Runtime[ChatContext]):
    steps = sum(isinstance(message, AIMessage) for message in state["messages"])
    if steps >= settings.CHAT_MAX_STEPS:
        raise TooManySteps(steps)
    model = chat_model(runtime.context.model)
    window = await window_for(runtime.context, state["messages"], model)
    if window.fold:
        return Command(goto=SUMMARIZE_NODE)
    write = get_stream_writer()
    message_id = str(uuid.uuid4())

    async def stream(part: str, text: str) -> None:
        write({"token": text, "part": part, "message_id": message_id})

    reply = await stream_reply(model.with_tools, window.messages, message_id=message_id, on_delta=stream)
    return {"messages": [reply]}


async def summarize(state: ChatState, runtime: Runtime[ChatContext]) -> dict:
    """Fold the oldest turns that no longer fit into the line's summary (stored at once,
    so a rerun after a crash finds them folded), then back to the model."""
    model = chat_model(runtime.context.model)
    window = await window_for(runtime.context, state["messages"], model)
    if window.fold:
        summary = await fold_into_summary(runtime.context, model, window)
        get_stream_writer()({
            "summary_id": f"summary:{summary.id}",
            "summary_usage": {"input_tokens": summary.input_tokens or 0, "output_tokens": summary.output_tokens or 0},
        })
    return {}


def build_graph(checkpointer):
    builder = StateGraph(ChatState, context_schema=ChatContext)
    builder.add_node(MODEL_NODE, call_model, destinations=(SUMMARIZE_NODE,))
    builder.add_node(TOOLS_NODE, run_tool)
    builder.add_node(SUMMARIZE_NODE, summarize)
    builder.add_edge(START, MODEL_NODE)
    builder.add_conditional_edges(MODEL_NODE, _route_tool_calls, [TOOLS_NODE, END])
    builder.add_edge(TOOLS_NODE, MODEL_NODE)
    builder.add_edge(SUMMARIZE_NODE, MODEL_NODE)
    return builder.compile(checkpointer=checkpointer)

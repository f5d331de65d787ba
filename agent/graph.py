"""The agent graph: a model node, and one tools task per tool call (Send), which waits
for the user's decision (interrupt) before a tool that needs approval."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt
from pydantic import ValidationError
from typing_extensions import TypedDict

from conversations import selectors

from . import ledger
from .context import ChatContext
from .llm import get_chat_model
from .prompts import SYSTEM_PROMPT
from .state import ChatState
from .tools import TOOLS

MODEL_NODE = "agent"
TOOLS_NODE = "tools"
DECISIONS = ["approve", "reject", "edit"]
REJECTED_PREFIX = "Rejected by the user."


class ToolCallInput(TypedDict):
    tool_call: dict


async def _earlier_turns(context: ChatContext) -> list:
    history = await selectors.atranscript_before(
        conversation_id=context.conversation_id, branch_id=context.branch_id, created_before=context.turn_created_at
    )
    return [HumanMessage(content=content) if role == "user" else AIMessage(content=content) for role, content in history]


def _route_tool_calls(state: ChatState):
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return [Send(TOOLS_NODE, {"tool_call": call}) for call in last.tool_calls]
    return END


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

    if tool is None:
        return answer(f"There is no tool named {tool_call['name']!r}.", ok=False)
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


def build_graph(checkpointer):
    model = get_chat_model().bind_tools([tool.as_openai_tool() for tool in TOOLS.values()])

    async def call_model(state: ChatState, runtime: Runtime[ChatContext]) -> dict:
        earlier = await _earlier_turns(runtime.context)
        reply = await model.ainvoke([SystemMessage(SYSTEM_PROMPT), *earlier, *state["messages"]])
        return {"messages": [reply]}

    builder = StateGraph(ChatState, context_schema=ChatContext)
    builder.add_node(MODEL_NODE, call_model)
    builder.add_node(TOOLS_NODE, run_tool)
    builder.add_edge(START, MODEL_NODE)
    builder.add_conditional_edges(MODEL_NODE, _route_tool_calls, [TOOLS_NODE, END])
    builder.add_edge(TOOLS_NODE, MODEL_NODE)
    return builder.compile(checkpointer=checkpointer)

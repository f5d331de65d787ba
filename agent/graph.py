"""The agent graph: a model node and a tool node, over a one-turn working set."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.runtime import Runtime

from conversations import selectors

from .context import ChatContext
from .llm import get_chat_model
from .prompts import SYSTEM_PROMPT
from .state import ChatState
from .tools import TOOLS

MODEL_NODE = "agent"
TOOLS_NODE = "tools"


async def _earlier_turns(context: ChatContext) -> list:
    history = await selectors.atranscript_before(
        conversation_id=context.conversation_id, message_id=context.turn_message_id
    )
    return [
        HumanMessage(content=m.content) if m.role == "user" else AIMessage(content=m.content)
        for m in history
    ]


def build_graph(checkpointer):
    model = get_chat_model().bind_tools(TOOLS)

    async def call_model(state: ChatState, runtime: Runtime[ChatContext]) -> dict:
        earlier = await _earlier_turns(runtime.context)
        reply = await model.ainvoke([SystemMessage(SYSTEM_PROMPT), *earlier, *state["messages"]])
        return {"messages": [reply]}

    builder = StateGraph(ChatState, context_schema=ChatContext)
    builder.add_node(MODEL_NODE, call_model)
    builder.add_node(TOOLS_NODE, ToolNode(TOOLS))
    builder.add_edge(START, MODEL_NODE)
    builder.add_conditional_edges(MODEL_NODE, tools_condition, {"tools": TOOLS_NODE, END: END})
    builder.add_edge(TOOLS_NODE, MODEL_NODE)
    return builder.compile(checkpointer=checkpointer)

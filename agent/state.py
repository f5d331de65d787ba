"""The graph's state: only the current turn's working set.

The full transcript lives in Django's Message table; each run starts by clearing the
previous turn's messages (RemoveMessage(REMOVE_ALL_MESSAGES)), and the model node reads
the earlier turns from Django. So a checkpoint holds one turn, never the whole history,
and the cost of a turn does not grow with the conversation's length.
"""

from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]

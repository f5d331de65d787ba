"""A conversation's checkpoints, read for the admin through the checkpointer API.

The admin's views are sync, so this opens a sync saver on its own connection (the
server's async saver belongs to its event loop). Values are decoded by the saver's
serializer (JsonPlusSerializer, no pickle fallback), never with pickle.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Interrupt, Send, StateSnapshot
from psycopg.rows import dict_row
from pydantic import BaseModel

from .checkpointer import database_settings, is_postgres, postgres_conninfo

# The newest checkpoints shown; each is decoded in full.
HISTORY_LIMIT = 200
UUID_EPOCH = datetime(1582, 10, 15, tzinfo=timezone.utc)
MESSAGE_FIELDS = {"type", "id", "name", "content", "tool_calls", "tool_call_id", "status"}


@contextmanager
def sync_saver() -> Iterator[BaseCheckpointSaver]:
    # The server's savers use this serializer too (the default); naming it keeps pickle out.
    serde = JsonPlusSerializer(pickle_fallback=False)
    db = database_settings()
    if is_postgres(db):
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver

        with psycopg.connect(
            postgres_conninfo(db), autocommit=True, prepare_threshold=None, row_factory=dict_row
        ) as conn:
            yield PostgresSaver(conn, serde=serde)
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(str(db["NAME"]), timeout=30, check_same_thread=False)
        try:
            yield SqliteSaver(conn, serde=serde)
        finally:
            conn.close()


@dataclass
class Item:
    """A pending write (key: its channel) or an interrupt (key: its id) of a task."""

    task: str
    key: str
    value: str


@dataclass
class Entry:
    """One checkpoint of the timeline."""

    checkpoint_id: str
    parent_id: str | None
    step: int | None
    source: str | None
    run_id: str | None
    created_at: str | None
    next: list[str]
    ran: list[str] = field(default_factory=list)
    writes: list[Item] = field(default_factory=list)
    interrupts: list[Item] = field(default_factory=list)


@dataclass
class State:
    """The graph's state at one checkpoint: messages as a conversation, the rest as JSON."""

    checkpoint_id: str
    messages: list[dict]
    other: str
    metadata: str


def checkpoint_history(*, conversation_id: str, selected: str | None = None) -> tuple[list[Entry], State | None]:
    """The newest checkpoints of the conversation's thread, newest first, and the state
    at `selected` (default: the newest; None if it is not among them)."""
    from .graph import build_graph

    config = {"configurable": {"thread_id": str(conversation_id), "checkpoint_ns": ""}}
    with sync_saver() as saver:
        # The compiled graph works out each checkpoint's next tasks and their interrupts.
        snapshots = list(build_graph(saver).get_state_history(config, limit=HISTORY_LIMIT))
        saved = {_id(t.config): t for t in saver.list(config, limit=HISTORY_LIMIT)}
    entries = [_entry(snapshot, saved[_id(snapshot.config)].pending_writes) for snapshot in snapshots]
    by_id = {entry.checkpoint_id: entry for entry in entries}
    for entry in entries:
        # The tasks a checkpoint schedules are the nodes that ran to make its child.
        parent = by_id.get(entry.parent_id)
        entry.ran = parent.next if parent else []
    chosen = selected or (entries[0].checkpoint_id if entries else None)
    snapshot = next((s for s in snapshots if _id(s.config) == chosen), None)
    return entries, _state(snapshot, saved[chosen].checkpoint["channel_values"]) if snapshot else None


def checkpoint_time(checkpoint_id: str) -> datetime | None:
    """When a checkpoint was made, from its id (a UUIDv6)."""
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    ticks = (value.time_low << 28) | (value.time_mid << 12) | (value.time_hi_version & 0x0FFF)
    return UUID_EPOCH + timedelta(microseconds=ticks // 10)


def _id(config: dict | None) -> str | None:
    return config["configurable"]["checkpoint_id"] if config else None


def _entry(snapshot: StateSnapshot, pending_writes: list[tuple[str, str, Any]]) -> Entry:
    metadata = snapshot.metadata or {}
    names = {task.id: task.name for task in snapshot.tasks}
    return Entry(
        checkpoint_id=_id(snapshot.config),
        parent_id=_id(snapshot.parent_config),
        step=metadata.get("step"),
        source=metadata.get("source"),
        run_id=metadata.get("chat_run_id"),
        created_at=snapshot.created_at,
        next=list(snapshot.next),
        writes=[Item(names.get(task, task), channel, readable(value)) for task, channel, value in pending_writes],
        interrupts=[
            Item(task.name, interrupt.id, readable(interrupt.value))
            for task in snapshot.tasks
            for interrupt in task.interrupts
        ],
    )


def _state(snapshot: StateSnapshot, saved_values: dict) -> State:
    """The state as the checkpoint saved it. LangGraph's snapshot adds the input written
    beside the checkpoint (a later turn's message, sent as a Command): not this step's."""
    values = {key: saved_values[key] for key in snapshot.values if key in saved_values}
    messages = values.pop("messages", [])
    return State(
        checkpoint_id=_id(snapshot.config),
        messages=[_message(message) for message in messages],
        other=readable(values),
        metadata=readable(snapshot.metadata),
    )


def _message(message: BaseMessage) -> dict:
    content = message.content if isinstance(message.content, str) else readable(message.content)
    return {
        "role": message.type,
        "id": message.id,
        "name": getattr(message, "name", None),
        "content": content,
        "tool_calls": [
            {"name": call["name"], "id": call["id"], "args": readable(call["args"])}
            for call in getattr(message, "tool_calls", [])
        ],
        "tool_call_id": getattr(message, "tool_call_id", None),
    }


def readable(value: Any) -> str:
    return json.dumps(plain(value), indent=2, ensure_ascii=False, default=str)


def plain(value: Any) -> Any:
    """A decoded value as JSON-able data."""
    if isinstance(value, BaseMessage):
        return plain(value.model_dump(include=MESSAGE_FIELDS, exclude_none=True))
    if isinstance(value, Interrupt):
        return {"interrupt": value.id, "value": plain(value.value)}
    if isinstance(value, Send):
        return {"send": value.node, "arg": plain(value.arg)}
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(item) for item in value]
    return value

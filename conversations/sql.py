"""The statements every turn runs besides its INSERTs, written out once.

Django builds and compiles a queryset at each call, which on these statements costs more
CPU than running them (`bench/turn_statements.py`). Here each is SQL with placeholders,
run through Django's cursor (in its transaction, on its connection). The same SQL serves
PostgreSQL and SQLite: values are passed as their fields' database values
(`Field.get_db_prep_value`), model rows are read with `Manager.raw` (which applies the
fields' conversions), and the lock is taken only where the backend has row locks.
Table and column names are the models', quoted as Django quotes them; each statement
starts with its verb, as Django's own (tests/conversations/test_sql.py compares each
statement's result with the ORM's).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from django.db import connection

from .models import Conversation, Message, Run

_RUN_ACTIVE = ", ".join(f"'{status}'" for status in Run.ACTIVE)

_CONVERSATION_LOCKED = f"""SELECT c.*,
        (SELECT COUNT(*) FROM "conversations_run" r
         WHERE r.conversation_id = c.id AND r.status = '{Run.Status.QUEUED}') AS queued_runs,
        EXISTS (SELECT 1 FROM "conversations_run" r
                WHERE r.conversation_id = c.id AND r.status IN ({_RUN_ACTIVE})) AS busy,
        (SELECT r.status FROM "conversations_run" r
         WHERE r.conversation_id = c.id ORDER BY r.created_at DESC LIMIT 1) AS latest_run_status
    FROM "conversations_conversation" c
    WHERE c.id = %s
"""
_CONVERSATION_TURN_STORED = """UPDATE "conversations_conversation"
    SET updated_at = %s, title = CASE WHEN title = '' THEN %s ELSE title END
    WHERE id = %s
"""
_CONVERSATION_TOUCHED = 'UPDATE "conversations_conversation" SET updated_at = %s WHERE id = %s'
_RUN_ENDED = f"""UPDATE "conversations_run"
    SET status = %s, error = %s, finished_at = %s, owner = %s, lease_expires_at = %s, checkpoint_id = %s,
        model = %s, input_tokens = %s, output_tokens = %s, reasoning_tokens = %s
    WHERE id = %s AND status IN ({_RUN_ACTIVE})
"""


def conversation_locked(pk) -> Conversation:
    """The conversation, locked until the transaction ends, annotated with `queued_runs`
    (a number), `busy` (whether a run is active: true or false, 1 or 0 on SQLite) and
    `latest_run_status` (how its latest run ended, or None: runs execute in order, so that
    one left the graph as it is). Conversation.DoesNotExist if absent."""
    locked = _CONVERSATION_LOCKED + (" FOR UPDATE OF c" if connection.features.has_select_for_update_of else "")
    for conversation in Conversation.objects.raw(locked, [_db_value(Conversation, "id", pk)]):
        return conversation
    raise Conversation.DoesNotExist


def conversation_turn_stored(pk, *, now, title: str) -> int:
    """A turn was stored: the conversation's new time, and `title` if it has none."""
    return _execute(_CONVERSATION_TURN_STORED, [
        _db_value(Conversation, "updated_at", now), title, _db_value(Conversation, "id", pk)])


def conversation_touched(pk, *, now) -> int:
    return _execute(_CONVERSATION_TOUCHED, [_db_value(Conversation, "updated_at", now), _db_value(Conversation, "id", pk)])


def run_ended(
    pk, *, status: str, error: str | None, finished_at, owner: str, lease_expires_at, checkpoint_id: str, model: str,
    input_tokens: int | None, output_tokens: int | None, reasoning_tokens: int | None,
) -> int:
    """End the run if it is still active; the number of runs ended (0 or 1)."""
    return _execute(_RUN_ENDED, [
        status, error, _db_value(Run, "finished_at", finished_at), owner,
        _db_value(Run, "lease_expires_at", lease_expires_at), checkpoint_id, model, input_tokens, output_tokens,
        reasoning_tokens, _db_value(Run, "id", pk),
    ])


_HISTORY_PAGE = """SELECT id, role, content, tool_calls, tool_call_id, tool_name, turn_at, created_at
    FROM "conversations_message" WHERE conversation_id = %s AND turn_at < %s ORDER BY turn_at DESC, created_at DESC, id DESC LIMIT %s
"""


def history_page(conversation_id, *, before_turn_at, limit: int) -> list[tuple]:
    """The conversation's latest `limit` messages before `before_turn_at`, newest first, as
    (id, role, content, tool_calls, tool_call_id, tool_name, turn_at, created_at): ids as
    UUIDs and times aware, on either backend (SQLite gives ids as hex and times naive, in
    UTC as Django stores them there); `tool_calls` as the driver returns JSON (text)."""
    with connection.cursor() as cursor:
        cursor.execute(_HISTORY_PAGE, [
            _db_value(Message, "conversation", conversation_id), _db_value(Message, "turn_at", before_turn_at), limit])
        return [(_uuid(id_), role, content, tool_calls, tool_call_id, tool_name, _aware(turn_at), _aware(created_at))
                for id_, role, content, tool_calls, tool_call_id, tool_name, turn_at, created_at in cursor.fetchall()]


def _db_value(model, field: str, value):
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)

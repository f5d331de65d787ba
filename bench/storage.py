"""What a conversation occupies in the database: its checkpoint rows and its Django rows."""

from __future__ import annotations

from tests.live import Database

CHECKPOINT_TABLES = {"postgres": ["checkpoints", "checkpoint_blobs", "checkpoint_writes"], "sqlite": ["checkpoints", "writes"]}


def _columns(db: Database, table: str) -> list[str]:
    if db.backend == "sqlite":
        return [row[1] for row in db.query(f"PRAGMA table_info({table})")]
    return [r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))]


def _tables_with(db: Database, column: str, prefixes: tuple[str, ...]) -> list[str]:
    if db.backend == "sqlite":
        names = [r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [r[0] for r in db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
    return sorted(n for n in names if n.startswith(prefixes) and column in _columns(db, n))


def _row_bytes(db: Database, table: str, where: str, params: tuple) -> int:
    """pg_column_size of each whole row (as stored: compressed, TOAST included) on
    PostgreSQL; the summed byte lengths of every column on SQLite."""
    if db.backend == "postgres":
        sql = f"SELECT COALESCE(SUM(pg_column_size(t.*)), 0) FROM {table} t WHERE {where}"
    else:
        parts = " + ".join(f"COALESCE(LENGTH(CAST({c} AS BLOB)), 0)" for c in _columns(db, table))
        sql = f"SELECT COALESCE(SUM({parts}), 0) FROM {table} WHERE {where}"
    return int(db.query(sql, params)[0][0])


def checkpoint_bytes(db: Database, thread_id: str) -> dict[str, int]:
    return {t: _row_bytes(db, t, "thread_id = %s", (thread_id,)) for t in CHECKPOINT_TABLES[db.backend]}


def checkpoint_rows(db: Database, thread_id: str) -> dict[str, int]:
    return {t: db.count(t, "thread_id = %s", (thread_id,)) for t in CHECKPOINT_TABLES[db.backend]}


def django_bytes(db: Database, conversation_id: str) -> dict[str, int]:
    out = {"conversations_conversation": _row_bytes(db, "conversations_conversation", "id = %s", (_id(db, conversation_id),))}
    for table in _tables_with(db, "conversation_id", ("conversations_", "agent_")):
        out[table] = _row_bytes(db, table, "conversation_id = %s", (_id(db, conversation_id),))
    return out


def text_bytes(db: Database, conversation_id: str) -> int:
    """UTF-8 bytes of the user and assistant messages' text."""
    if db.backend == "postgres":
        sql = ("SELECT COALESCE(SUM(octet_length(content)), 0) FROM conversations_message "
               "WHERE conversation_id = %s AND role IN ('user', 'assistant')")
    else:
        sql = ("SELECT COALESCE(SUM(LENGTH(CAST(content AS BLOB))), 0) FROM conversations_message "
               "WHERE conversation_id = %s AND role IN ('user', 'assistant')")
    return int(db.query(sql, (_id(db, conversation_id),))[0][0])


def _id(db: Database, conversation_id: str) -> str:
    # Django stores UUIDs as 32 hex digits on SQLite, as uuid on PostgreSQL.
    return conversation_id.replace("-", "") if db.backend == "sqlite" else conversation_id

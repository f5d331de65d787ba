"""Writes to the graph's checkpoint tables, in Django's transaction: deleting a
conversation's checkpoints with it, and retention (which keeps what its runs and
branches still need).

LangGraph's own `prune(strategy="keep_latest")` keeps one checkpoint per thread; this
keeps the latest N and every checkpoint the app still needs, on both backends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from agent.checkpointer import is_postgres
from agent.context import RUN_METADATA_KEY

from .models import Branch, Conversation, Run

SQLITE_BATCH = 500
# Trimming after a run waits for this many extra checkpoints, so it deletes in batches;
# and a process counts a conversation's checkpoints once it wrote this many there since
# it last counted them (the checkpointer's count_due).
TRIM_SLACK = 10
# Each saver's tables, and what PruneReport calls their rows.
CHECKPOINT_TABLES_POSTGRES = {"checkpoint_writes": "writes", "checkpoint_blobs": "blobs", "checkpoints": "checkpoints"}
CHECKPOINT_TABLES_SQLITE = {"writes": "writes", "checkpoints": "checkpoints"}


@dataclass
class PruneReport:
    conversations: int = 0
    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    kept: int = 0
    by_conversation: dict[str, int] = field(default_factory=dict)
    # Threads whose conversation was deleted, and their checkpoints: all deleted.
    of_deleted_conversations: dict[str, int] = field(default_factory=dict)


def _tables() -> dict[str, str]:
    return CHECKPOINT_TABLES_POSTGRES if is_postgres(connection.settings_dict) else CHECKPOINT_TABLES_SQLITE


def checkpoints_delete(*, thread_id: str, dry_run: bool = False) -> dict[str, int]:
    """Every checkpoint row of the thread, on whichever backend; the rows (counted only,
    with `dry_run`) by PruneReport's name for them."""
    rows = {}
    with connection.cursor() as cursor:
        for table, name in _tables().items():
            if dry_run:
                cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE thread_id = %s", [thread_id])
                rows[name] = cursor.fetchone()[0]
            else:
                cursor.execute(f"DELETE FROM {table} WHERE thread_id = %s", [thread_id])
                rows[name] = cursor.rowcount
    return rows


def checkpoints_delete_orphaned(*, thread_id: str, dry_run: bool = False) -> dict[str, int] | None:
    """The thread's checkpoint rows if its conversation no longer exists (see
    checkpoints_delete); None, and nothing deleted, while it does. A thread's rows are
    written only once its conversation exists, so one that is not there was deleted."""
    with transaction.atomic():
        if Conversation.objects.filter(pk=thread_id).exists():
            return None
        return checkpoints_delete(thread_id=thread_id, dry_run=dry_run)


def checkpoints_prune(*, keep: int, idle_for: timedelta | None = None, dry_run: bool = False) -> PruneReport:
    """Delete old checkpoints of every conversation (idle for `idle_for`, if given).

    Kept per conversation: the latest `keep` of each namespace (the graph's own, and each
    subgraph's); the last one of each branch's latest run
    (a new turn on that branch forks from it); and every one of an active run (queued,
    running, or waiting for approvals: it resumes from them). The transcript lives in
    Django's tables, so a conversation loads, continues and switches branches whatever
    was pruned.

    Every checkpoint of a conversation that no longer exists is deleted, idle or not: a
    delete removes its conversation's checkpoints, and a run stopped by it removes what
    it wrote after; these are the rows of a process that died in between.
    """
    if keep < 1:
        raise ValueError("keep at least one checkpoint per conversation")
    conversations = Conversation.objects.order_by("created_at")
    if idle_for is not None:
        conversations = conversations.filter(updated_at__lt=timezone.now() - idle_for)
    report = PruneReport()
    for conversation_id in conversations.values_list("id", flat=True).iterator():
        _prune(conversation_id, keep=keep, dry_run=dry_run, report=report)
    for thread_id in _threads_of_deleted_conversations():
        rows = checkpoints_delete_orphaned(thread_id=thread_id, dry_run=dry_run)
        if rows is not None:
            report.of_deleted_conversations[thread_id] = rows["checkpoints"]
            report.checkpoints += rows["checkpoints"]
            report.writes += rows["writes"]
            report.blobs += rows.get("blobs", 0)  # PostgreSQL's saver only
    return report


def _threads_of_deleted_conversations() -> list[str]:
    """Checkpoint threads named by a conversation id that no conversation has now; other
    threads (not named by a conversation id) are left alone. The threads are read before
    the conversations: a thread's first row is written after its conversation was
    created, so one missing from the second read was deleted."""
    with connection.cursor() as cursor:
        cursor.execute(" UNION ".join(f"SELECT thread_id FROM {table}" for table in _tables()))
        threads = {}
        for (thread_id,) in cursor.fetchall():
            try:
                threads[uuid.UUID(thread_id)] = thread_id
            except ValueError:
                continue
    existing = set()
    for batch in _batches(list(threads)):
        existing.update(Conversation.objects.filter(pk__in=batch).values_list("pk", flat=True))
    return [thread_id for conversation_id, thread_id in threads.items() if conversation_id not in existing]


def checkpoints_trim(*, conversation_id, keep: int) -> int:
    """After a run: prune the conversation to its latest `keep` checkpoints (and those
    still needed) once it holds TRIM_SLACK more, so its checkpoints stay bounded however
    long it runs. Returns the number deleted."""
    if keep < 1 or _backend().count_checkpoints(str(conversation_id)) <= keep + TRIM_SLACK:
        return 0
    return _prune(conversation_id, keep=keep, dry_run=False, report=PruneReport()).checkpoints


def _backend():
    return _Postgres() if is_postgres(connection.settings_dict) else _Sqlite()


def _prune(conversation_id, *, keep: int, dry_run: bool, report: PruneReport) -> PruneReport:
    backend = _backend()
    with transaction.atomic():
        thread_id = str(conversation_id)
        checkpoints = backend.checkpoints(thread_id)
        needed = _needed(conversation_id, checkpoints, keep)
        doomed = [checkpoint.id for checkpoint in checkpoints if checkpoint.id not in needed]
        report.conversations += 1
        report.kept += len(checkpoints) - len(doomed)
        if not doomed:
            return report
        report.by_conversation[thread_id] = len(doomed)
        report.checkpoints += len(doomed)
        counted = backend.count(thread_id, doomed) if dry_run else backend.delete(thread_id, doomed)
        report.writes += counted["writes"]
        report.blobs += counted["blobs"]
    return report


@dataclass(frozen=True)
class _Checkpoint:
    namespace: str  # "" for the graph's own, else a subgraph's
    id: str
    run_id: str | None


def _needed(conversation_id, checkpoints: list[_Checkpoint], keep: int) -> set[str]:
    """The latest `keep` of each namespace (`checkpoints` are newest first within each
    namespace), the branch heads, and every checkpoint of an active run."""
    runs = Run.objects.filter(conversation_id=conversation_id)
    active = {str(run_id) for run_id in runs.filter(status__in=Run.ACTIVE).values_list("id", flat=True)}
    kept_per_namespace: dict[str, int] = {}
    needed = _branch_heads(conversation_id)
    for checkpoint in checkpoints:
        kept = kept_per_namespace.get(checkpoint.namespace, 0)
        if kept < keep or _same_run(checkpoint.run_id, active):
            needed.add(checkpoint.id)
        kept_per_namespace[checkpoint.namespace] = kept + 1
    return needed


def _branch_heads(conversation_id) -> set[str]:
    """The last checkpoint of each branch's latest run: where its next turn forks from."""
    ended = Run.objects.exclude(checkpoint_id="").order_by("-created_at").values("checkpoint_id")
    heads = Branch.objects.filter(conversation_id=conversation_id).annotate(
        head=Subquery(ended.filter(branch=OuterRef("pk"))[:1])
    ).values_list("head", flat=True)
    unforked = ended.filter(conversation_id=conversation_id, branch__isnull=True)[:1].values_list("checkpoint_id", flat=True)
    return {head for head in [*heads, *unforked] if head}


def _same_run(run_id: str | None, run_ids: set[str]) -> bool:
    return bool(run_id) and str(run_id) in run_ids


class _Tables:
    def count_checkpoints(self, thread_id: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = %s", [thread_id])
            return cursor.fetchone()[0]


class _Postgres(_Tables):
    def checkpoints(self, thread_id: str) -> list[_Checkpoint]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT checkpoint_ns, checkpoint_id, metadata->>'{RUN_METADATA_KEY}' FROM checkpoints "
                "WHERE thread_id = %s ORDER BY checkpoint_ns, checkpoint_id DESC",
                [thread_id],
            )
            return [_Checkpoint(*row) for row in cursor.fetchall()]

    def count(self, thread_id: str, doomed: list[str]) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = ANY(%s)",
                [thread_id, doomed],
            )
            writes = cursor.fetchone()[0]
        return {"writes": writes, "blobs": len(self._garbage_blobs(thread_id, doomed))}

    def delete(self, thread_id: str, doomed: list[str]) -> dict[str, int]:
        garbage = self._garbage_blobs(thread_id, doomed)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = ANY(%s)", [thread_id, doomed]
            )
            writes = cursor.rowcount
            cursor.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id = ANY(%s)", [thread_id, doomed]
            )
            # As LangGraph's own prune does: a kept checkpoint does not name a deleted parent.
            cursor.execute(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s AND parent_checkpoint_id = ANY(%s)",
                [thread_id, doomed],
            )
            if garbage:
                namespaces, channels, versions = zip(*garbage)
                cursor.execute(
                    "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND (checkpoint_ns, channel, version)"
                    " IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
                    [thread_id, list(namespaces), list(channels), list(versions)],
                )
        return {"writes": writes, "blobs": len(garbage)}

    def _garbage_blobs(self, thread_id: str, doomed: list[str]) -> set[tuple[str, str, str]]:
        """Blobs (namespace, channel, version) that only the doomed checkpoints use: each
        namespace has blobs of its own."""
        versions = """
            SELECT DISTINCT c.checkpoint_ns, v.key, v.value FROM checkpoints c
            CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
            WHERE c.thread_id = %s AND ({} c.checkpoint_id = ANY(%s))
        """
        with connection.cursor() as cursor:
            cursor.execute(versions.format(""), [thread_id, doomed])
            freed = set(cursor.fetchall())
            cursor.execute(versions.format("NOT"), [thread_id, doomed])
            return freed - set(cursor.fetchall())


class _Sqlite(_Tables):
    """The SQLite saver keeps values inline in its two tables: no blobs."""

    def checkpoints(self, thread_id: str) -> list[_Checkpoint]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT checkpoint_ns, checkpoint_id, json_extract(CAST(metadata AS TEXT), '$.{RUN_METADATA_KEY}') "
                "FROM checkpoints WHERE thread_id = %s ORDER BY checkpoint_ns, checkpoint_id DESC",
                [thread_id],
            )
            return [_Checkpoint(*row) for row in cursor.fetchall()]

    def count(self, thread_id: str, doomed: list[str]) -> dict[str, int]:
        writes = 0
        with connection.cursor() as cursor:
            for batch in _batches(doomed):
                cursor.execute(
                    f"SELECT COUNT(*) FROM writes WHERE thread_id = %s AND checkpoint_id IN ({_marks(batch)})",
                    [thread_id, *batch],
                )
                writes += cursor.fetchone()[0]
        return {"writes": writes, "blobs": 0}

    def delete(self, thread_id: str, doomed: list[str]) -> dict[str, int]:
        writes = 0
        with connection.cursor() as cursor:
            for batch in _batches(doomed):
                params = [thread_id, *batch]
                cursor.execute(f"DELETE FROM writes WHERE thread_id = %s AND checkpoint_id IN ({_marks(batch)})", params)
                writes += cursor.rowcount
                cursor.execute(f"DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id IN ({_marks(batch)})", params)
                cursor.execute(
                    f"UPDATE checkpoints SET parent_checkpoint_id = NULL "
                    f"WHERE thread_id = %s AND parent_checkpoint_id IN ({_marks(batch)})",
                    params,
                )
        return {"writes": writes, "blobs": 0}


def _batches(items: list[str]):
    for start in range(0, len(items), SQLITE_BATCH):
        yield items[start : start + SQLITE_BATCH]


def _marks(batch: list[str]) -> str:
    return ", ".join(["%s"] * len(batch))

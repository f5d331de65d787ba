"""ORM functions called from async code."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

_executor: ThreadPoolExecutor | None = None


def to_async(func):
    """`func`, which uses the ORM, as a coroutine function.

    On PostgreSQL the calls run on a pool of ORM_THREADS threads, each with its own
    connection, so that many conversations query the database at once, where asgiref's
    default (thread-sensitive) runs every call of the process on one thread, one query
    after another. Each call is one function on one thread, so its transaction stays on
    one connection. SQLite takes one writer at a time: there asgiref's one thread serves
    every call.
    """
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        return sync_to_async(func)

    @functools.wraps(func)
    def on_a_pool_thread(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DatabaseError:
            # No request cycle closes a pool thread's connection: drop it here if it is
            # broken (a database restart), so the next call on this thread reconnects.
            connection.close_if_unusable_or_obsolete()
            raise

    return sync_to_async(on_a_pool_thread, thread_sensitive=False, executor=_pool())


def _pool() -> ThreadPoolExecutor:
    """One pool per process, shared by every event loop: threads, unlike the
    checkpointer's pool of async connections, belong to no loop."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.ORM_THREADS, thread_name_prefix="orm")
    return _executor

"""ORM functions called from async code."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models.sql import UpdateQuery

_executor: ThreadPoolExecutor | None = None


def to_async(func):
    """`func`, which uses the ORM, as a coroutine function.

    On PostgreSQL the calls run on a pool of ORM_THREADS threads, each with its own
    connection, so that many conversations query the database at once. asgiref's default
    (thread-sensitive) runs every call of the process on one thread, one query after
    another: with 100 conversations that thread was busy all the time, waiting on
    PostgreSQL (BENCHMARKS.md). Each call is one function on one thread, so its
    transaction stays on one connection. SQLite takes one writer at a time, so there one
    thread serves every call, as before.
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


# A time no call passes (year 1), for Compiled's stand-ins; add microseconds for a second one.
STAND_IN_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)


class Compiled:
    """A statement Django builds and compiles once, then runs again with other values.

    On the path of every turn, building and compiling a queryset cost most of the CPU of
    its statement (`bench/experiments/orm_costs.py`): 0.74 ms for the send's locked read
    with its subqueries, where the same SQL through Django's cursor took 0.1 ms; 0.28 ms
    for a one-row UPDATE, against 0.08 ms. `build` makes the statement with a stand-in
    for each value that changes from call to call (`stand_ins`: a name and a value no
    call passes, such as a random UUID, a string with NUL, or STAND_IN_TIME). The
    first call on PostgreSQL compiles it and notes where each stand-in landed among the
    parameters; each call runs that SQL with its own values there. PostgreSQL takes the
    values as the ORM would pass them (UUIDs, datetimes, strings, None). Elsewhere
    (SQLite, whose ORM converts values first) each call builds the statement again.

    `build(**values)` returns a queryset (a SELECT: `get` for a model's, `rows` for a
    `values_list`), or a queryset and the field values for an UPDATE of its rows.
    """

    def __init__(self, build, **stand_ins):
        self._build = build
        self._stand_ins = stand_ins
        self._compiled: tuple[str, list, dict[str, list[int]]] | None = None
        self._model = None

    def get(self, **values):
        """The SELECT's one row as a model instance, with its annotations, as QuerySet.get."""
        if not self._compiles(values):
            return self._build(**values).get()
        sql, params = self._sql_with(values)
        model = self._model
        found = list(model.objects.raw(sql, params))
        if len(found) != 1:
            raise model.DoesNotExist if not found else model.MultipleObjectsReturned
        return found[0]

    def rows(self, **values) -> list[tuple]:
        """The rows of a `values_list` SELECT, as the database driver returns them: no
        field's `from_db_value` applies (so not for JSON or other converted fields)."""
        if not self._compiles(values):
            return list(self._build(**values))
        return self._execute(values, lambda cursor: cursor.fetchall())

    def update(self, **values) -> int:
        """Run the UPDATE; the number of rows it changed."""
        if not self._compiles(values):
            queryset, fields = self._build(**values)
            return queryset.update(**fields)
        return self._execute(values, lambda cursor: cursor.rowcount)

    def _execute(self, values: dict, result):
        sql, params = self._sql_with(values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return result(cursor)

    def _compiles(self, values: dict) -> bool:
        """Whether this call runs the compiled SQL (on PostgreSQL), after checking that it
        gives exactly the named values, on every backend: a stand-in must never reach the
        database."""
        if values.keys() != self._stand_ins.keys():
            raise TypeError(f"give exactly {sorted(self._stand_ins)}, not {sorted(values)}")
        return connection.vendor == "postgresql"

    def _sql_with(self, values: dict) -> tuple[str, list]:
        if self._compiled is None:
            self._compiled = self._compile()
        sql, params, positions = self._compiled
        params = list(params)
        for name, value in values.items():
            for position in positions[name]:
                params[position] = value
        return sql, params

    def _compile(self) -> tuple[str, list, dict[str, list[int]]]:
        built = self._build(**self._stand_ins)
        if isinstance(built, tuple):
            queryset, fields = built
            query = queryset.query.chain(UpdateQuery)
            query.add_update_values(fields)
        else:
            queryset, query = built, built.query
        self._model = queryset.model
        sql, params = query.get_compiler(connection=connection).as_sql()
        positions = {
            name: [i for i, param in enumerate(params) if param is stand_in or param == stand_in]
            for name, stand_in in self._stand_ins.items()
        }
        missing = [name for name, found in positions.items() if not found]
        if missing:
            raise ValueError(f"the statement has no parameter for {missing}")
        return sql, list(params), positions

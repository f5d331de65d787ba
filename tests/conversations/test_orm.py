"""conversations.orm: where the ORM calls of async code run (to_async)."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connection

from conversations import orm

POSTGRES = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


def run_twice_at_once(func) -> list[str]:
    async def both():
        return await asyncio.gather(func(), func())

    return asyncio.run(both())


def test_on_postgresql_calls_run_at_the_same_time(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", POSTGRES)  # no query is made
    # Both calls must be inside the function at once to pass the barrier: one thread
    # for all calls would wait here until the timeout.
    barrier = threading.Barrier(2, timeout=10)

    def meet() -> str:
        barrier.wait()
        return threading.current_thread().name

    names = run_twice_at_once(orm.to_async(meet))
    assert len(set(names)) == 2 and all(name.startswith("orm") for name in names)


def test_on_sqlite_one_thread_serves_every_call(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", SQLITE)
    names = run_twice_at_once(orm.to_async(lambda: threading.current_thread().name))
    assert names[0] == names[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_broken_connection_is_dropped_and_the_next_call_reconnects(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")
    monkeypatch.setattr(orm, "_executor", ThreadPoolExecutor(max_workers=1))  # one thread, one connection

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pid = orm.to_async(backend_pid)
    try:
        first = asyncio.run(pid())
        with connection.cursor() as cursor:  # a database restart, as that thread sees it
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        with pytest.raises(OperationalError):
            asyncio.run(pid())
        assert asyncio.run(pid()) != first
    finally:
        asyncio.run(orm.to_async(lambda: connection.close())())  # that thread's connection
